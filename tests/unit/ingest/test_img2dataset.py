"""img2dataset sources: the real tiny-imagenet webdataset, the `files` layout, positions and
resume, and damaged shards."""

import json
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

from asifdb.ingest import (
    RejectCode,
    SourceKind,
    ValidItem,
    count_items,
    iter_items,
    validate,
)
from tests.samples import open_test_source


def _link_shards(wds: Path, folder: Path, shards: list[str], *, stats: bool = True) -> Path:
    folder.mkdir()
    # Copies, not links: a link out of the source's root is never followed.
    for shard in shards:
        shutil.copyfile(wds / f"{shard}.tar", folder / f"{shard}.tar")
        if stats:
            shutil.copyfile(wds / f"{shard}_stats.json", folder / f"{shard}_stats.json")
    return folder


def _keys(source, **positions) -> list[str]:
    return [item.key for item in iter_items(source, **positions)]


def test_real_webdataset_counts_from_stats(wds: Path) -> None:
    source = open_test_source(wds)
    assert source.kind is SourceKind.WEBDATASET
    assert count_items(source) == 20_000


def test_real_shard_items_match_its_members(wds: Path) -> None:
    expected: dict[str, dict[str, bytes]] = {}
    with tarfile.open(wds / "00000.tar") as tar:
        for member in tar:
            key, extension = member.name.split(".", 1)
            reader = tar.extractfile(member)
            assert reader is not None
            expected.setdefault(key, {})[extension] = reader.read()

    items = list(iter_items(open_test_source(wds / "00000.tar")))

    assert [item.key for item in items] == [f"00000.tar/00000{i:04d}" for i in range(1000)]
    for item in items:
        files = expected[item.key.removeprefix("00000.tar/")]
        assert item.reject_reason is None
        assert item.image_bytes == files["jpg"]
        assert item.caption == files["txt"].decode()
        assert item.metadata == json.loads(files["json"])
        assert item.source_uri == f"{item.metadata['source']}/{item.metadata['original_name']}"
    results = [validate(item) for item in items]
    assert all(isinstance(result, ValidItem) for result in results)
    assert {(r.width, r.height, r.format) for r in results if isinstance(r, ValidItem)} == {
        (64, 64, "JPEG")
    }


def test_order_is_stable_and_ranges_tile_the_source(wds: Path, tmp_path: Path) -> None:
    source = open_test_source(_link_shards(wds, tmp_path / "two", ["00000", "00001"]))
    everything = _keys(source)
    assert count_items(source) == len(everything) == 2_000
    assert len(set(everything)) == 2_000
    assert _keys(source) == everything

    bounds = [0, 1, 700, 999, 1000, 1001, 1500, 2000]
    pieces = [_keys(source, start=a, stop=b) for a, b in zip(bounds, bounds[1:], strict=False)]
    assert sum(pieces, []) == everything
    assert _keys(source, start=1500) == everything[1500:]
    assert _keys(source, stop=1500) == everything[:1500]
    assert _keys(source, start=2000) == []


def test_resume_skips_earlier_shards_unread(wds: Path, tmp_path: Path) -> None:
    source = open_test_source(_link_shards(wds, tmp_path / "src", ["00000", "00001"]))
    opened: list[str] = []
    recording = [True]

    def record(event: str, arguments: tuple) -> None:
        if recording and event == "open" and isinstance(arguments[0], str | Path):
            opened.append(Path(arguments[0]).name)

    sys.addaudithook(record)
    try:
        resumed = [item.key for item in iter_items(source, start=1500)]
    finally:
        # Audit hooks cannot be removed; this one goes inert.
        recording.clear()

    assert resumed == [f"00001.tar/00001{i:04d}" for i in range(500, 1000)]
    assert "00001.tar" in opened
    assert "00000.tar" not in opened


def test_count_scans_shards_without_stats(wds: Path, tmp_path: Path) -> None:
    source = open_test_source(_link_shards(wds, tmp_path / "bare", ["00002"], stats=False))
    assert count_items(source) == 1000
    assert len(_keys(source, start=999)) == 1


@pytest.mark.parametrize("declared", [1, 2, 5])
def test_ranges_read_every_item_once_when_stats_disagree(
    declared: int, real_samples, write_tar, tmp_path: Path
) -> None:
    members = [
        (f"{key}.{ext}", data)
        for key, *files in real_samples[:3]
        for ext, data in zip(("jpg", "txt", "json"), files, strict=True)
    ]
    write_tar(tmp_path / "00000.tar", members)
    (tmp_path / "00000_stats.json").write_text(json.dumps({"successes": declared}))
    write_tar(tmp_path / "00001.tar", [("x.jpg", real_samples[3][1]), ("x.txt", b"last")])
    source = open_test_source(tmp_path)

    total = count_items(source)
    assert total == declared + 1
    pieces = [_keys(source, start=i, stop=i + 1) for i in range(total)]
    assert sum(pieces, []) == _keys(source)
    assert len(_keys(source)) == 4


def test_mixed_shard_rejects_bad_samples_and_keeps_good_ones(
    real_samples, image_bytes, bomb_png, write_tar, tmp_path: Path
) -> None:
    jpg = real_samples[0][1]
    samples: dict[str, list[tuple[str, bytes]]] = {
        "good1": [("jpg", jpg), ("txt", b"a small bucket"), ("json", real_samples[0][3])],
        "text": [("jpg", b"this is a text file, renamed"), ("txt", b"a cat")],
        "truncated": [("jpg", jpg[: len(jpg) // 2]), ("txt", b"a cat")],
        "empty": [("jpg", b""), ("txt", b"a cat")],
        "blank": [("jpg", jpg), ("txt", b" \t\n ")],
        "long": [("jpg", jpg), ("txt", b"cat " * 400)],
        "latin1": [("jpg", jpg), ("txt", "caf\xe9".encode("latin-1"))],
        "orphan": [("txt", b"a caption without its image"), ("json", b"{}")],
        "silent": [("jpg", jpg)],
        "tiny": [("png", image_bytes("PNG", (4, 4))), ("txt", b"a dot")],
        "bomb": [("png", bomb_png(20_000)), ("txt", b"a bomb")],
        "badjson": [("jpg", jpg), ("txt", b"a cat"), ("json", b"{not json")],
        "good2": [("webp", image_bytes("WEBP", (16, 16))), ("txt", b"  a  grey\nsquare ")],
    }
    members = [(f"{key}.{ext}", data) for key, files in samples.items() for ext, data in files]
    write_tar(tmp_path / "00000.tar", members)
    source = open_test_source(tmp_path)

    verdicts = {}
    for item in iter_items(source):
        result = validate(item)
        verdicts[item.key] = "ok" if isinstance(result, ValidItem) else result.reason.code
        if item.key == "00000.tar/good2":
            assert isinstance(result, ValidItem) and result.caption == "a grey square"

    assert verdicts == {
        "00000.tar/good1": "ok",
        "00000.tar/text": RejectCode.NOT_AN_IMAGE,
        "00000.tar/truncated": RejectCode.CORRUPT_IMAGE,
        "00000.tar/empty": RejectCode.EMPTY_IMAGE,
        "00000.tar/blank": RejectCode.EMPTY_CAPTION,
        "00000.tar/long": RejectCode.CAPTION_TOO_LONG,
        "00000.tar/latin1": RejectCode.CAPTION_NOT_UTF8,
        "00000.tar/orphan": RejectCode.MISSING_IMAGE,
        "00000.tar/silent": RejectCode.MISSING_CAPTION,
        "00000.tar/tiny": RejectCode.IMAGE_TOO_SMALL,
        "00000.tar/bomb": RejectCode.DECOMPRESSION_BOMB,
        "00000.tar/badjson": RejectCode.BAD_RECORD,
        "00000.tar/good2": "ok",
    }
    assert count_items(source) == len(verdicts)


def _tar_with_good_neighbour(folder: Path, damaged: bytes, wds: Path) -> Path:
    """Shard 00000 damaged after img2dataset wrote its stats; shard 00001 intact."""
    _link_shards(wds, folder, ["00001"])
    (folder / "00000.tar").write_bytes(damaged)
    shutil.copyfile(wds / "00000_stats.json", folder / "00000_stats.json")
    return folder


def _member_end(path: Path, index: int) -> int:
    """Byte offset just after the data of the index-th member (a header boundary)."""
    with tarfile.open(path) as tar:
        member = tar.getmembers()[index]
    return member.offset_data + -(-member.size // 512) * 512


@pytest.mark.parametrize("cut", ["mid-member", "header-boundary"])
def test_truncated_shard_keeps_what_precedes_the_cut(cut: str, wds: Path, tmp_path: Path) -> None:
    data = (wds / "00000.tar").read_bytes()
    # 30 members = 10 whole samples; the mid-member cut also halves the 11th sample's image.
    end = _member_end(wds / "00000.tar", 29)
    cut_at = end + 512 + 700 if cut == "mid-member" else end
    source = open_test_source(_tar_with_good_neighbour(tmp_path / "src", data[:cut_at], wds))

    first = list(iter_items(source, stop=1000))
    intact = [item for item in first if item.reject_reason is None]
    shard_reject = [item for item in first if item.key == "00000.tar"]

    assert [item.key for item in intact] == [f"00000.tar/00000{i:04d}" for i in range(10)]
    assert len(shard_reject) == 1
    assert shard_reject[0].reject_reason.code is RejectCode.CORRUPT_SHARD
    assert "00000.tar" in shard_reject[0].reject_reason.message
    if cut == "mid-member":
        assert first[10].key == "00000.tar/000000010"
        assert first[10].reject_reason.code is RejectCode.CORRUPT_SHARD
    neighbour = list(iter_items(source, start=1000))
    assert len(neighbour) == 1000
    assert all(item.reject_reason is None for item in neighbour)


def test_shard_with_garbage_header_is_rejected_by_name(wds: Path, tmp_path: Path) -> None:
    data = bytearray((wds / "00000.tar").read_bytes())
    end = _member_end(wds / "00000.tar", 5)
    data[end : end + 512] = b"\xff" * 512
    source = open_test_source(_tar_with_good_neighbour(tmp_path / "src", bytes(data), wds))

    items = list(iter_items(source))

    assert [item.key for item in items[:2]] == ["00000.tar/000000000", "00000.tar/000000001"]
    assert items[2].key == "00000.tar"
    assert items[2].reject_reason.code is RejectCode.CORRUPT_SHARD
    assert "damaged header" in items[2].reject_reason.message
    assert len(items) == 3 + 1000


def test_zero_byte_shard_is_one_reject_and_the_rest_goes_in(wds: Path, tmp_path: Path) -> None:
    source = open_test_source(_tar_with_good_neighbour(tmp_path / "src", b"", wds))

    items = list(iter_items(source))

    assert len(items) == 1001
    assert items[0].key == "00000.tar"
    assert items[0].reject_reason.code is RejectCode.CORRUPT_SHARD
    assert all(item.reject_reason is None for item in items[1:])


def test_files_layout(real_samples, image_bytes, tmp_path: Path, judge) -> None:
    shard = tmp_path / "00000"
    shard.mkdir()
    for key, jpg, txt, meta in real_samples[:3]:
        (shard / f"{key}.jpg").write_bytes(jpg)
        (shard / f"{key}.txt").write_bytes(txt)
        (shard / f"{key}.json").write_bytes(meta)
    (shard / "000000003.png").write_bytes(image_bytes("PNG", (20, 10)))
    (shard / "000000003.txt").write_text("a png")
    (shard / "000000004.webp").write_bytes(image_bytes("WEBP", (10, 20)))
    (shard / "000000004.txt").write_text("a webp")
    (shard / "000000005.jpeg").write_bytes(image_bytes("JPEG", (12, 12), mode="L"))
    (shard / "000000005.txt").write_text("a grey jpeg")
    (shard / "000000006.txt").write_text("lost its image")
    (tmp_path / "00000.parquet").write_bytes(b"PAR1")
    source = open_test_source(tmp_path)

    items = list(iter_items(source))

    assert source.kind is SourceKind.FILES
    assert [item.key for item in items] == [f"00000/00000000{i}" for i in range(7)]
    assert items[0].caption == real_samples[0][2].decode()
    assert items[0].metadata == json.loads(real_samples[0][3])
    # Provenance is relative to the source's root, never an absolute server path.
    assert items[3].source_uri == (shard / "000000003.png").relative_to(source.root).as_posix()
    assert judge(items) == {
        **{f"00000/00000000{i}": "ok" for i in range(6)},
        "00000/000000006": RejectCode.MISSING_IMAGE,
    }
    assert count_items(source) == 7
    (tmp_path / "00000_stats.json").write_text('{"successes": 6}')
    assert count_items(source) == 6


def test_scattered_sample_files_get_unique_keys(real_samples, write_tar, tmp_path: Path) -> None:
    jpg = real_samples[0][1]
    members = [("a.jpg", jpg), ("b.jpg", jpg), ("a.txt", b"a"), ("b.txt", b"b"), ("c.jpg", jpg)]
    write_tar(tmp_path / "00000.tar", [*members, ("c.txt", b"c")])

    items = list(iter_items(open_test_source(tmp_path)))

    assert [item.key for item in items] == [
        "00000.tar/a",
        "00000.tar/b",
        "00000.tar/a#2",
        "00000.tar/b#3",
        "00000.tar/c",
    ]
    assert [item.reject_reason.code if item.reject_reason else "ok" for item in items] == [
        RejectCode.MISSING_CAPTION,
        RejectCode.MISSING_CAPTION,
        RejectCode.CORRUPT_SHARD,
        RejectCode.CORRUPT_SHARD,
        "ok",
    ]


def _items(source, **positions) -> list[tuple]:
    return [
        (
            item.key,
            item.image_bytes,
            item.caption,
            item.reject_reason.code if item.reject_reason else None,
        )
        for item in iter_items(source, **positions)
    ]


def test_a_batch_mid_shard_resumes_at_its_sample_and_reads_the_same(
    wds: Path, tmp_path: Path
) -> None:
    from asifdb.ingest import img2dataset

    source = open_test_source(_link_shards(wds, tmp_path / "one", ["00000"]))
    bounds = [(600, 700), (0, 256), (256, 512), (900, 1000), (512, 600), (700, 900), (255, 257)]
    img2dataset._WALKED.clear()
    expected = {b: _items(source, start=b[0], stop=b[1]) for b in bounds}
    img2dataset._WALKED.clear()
    for start, stop in bounds:
        assert _items(source, start=start, stop=stop) == expected[start, stop], (start, stop)
    [walked] = img2dataset._WALKED.values()
    assert len(walked.offsets) == 1000 and walked.offsets == sorted(walked.offsets)
    assert walked.keys[:2] == ["000000000", "000000001"]


def test_resuming_past_a_repeated_key_still_refuses_it(
    real_samples, write_tar, tmp_path: Path
) -> None:
    from asifdb.ingest import img2dataset

    jpg = real_samples[0][1]
    members = [("a.jpg", jpg), ("b.jpg", jpg), ("a.txt", b"a"), ("b.txt", b"b"), ("c.jpg", jpg)]
    write_tar(tmp_path / "00000.tar", [*members, ("c.txt", b"c")])
    source = open_test_source(tmp_path)
    whole = _items(source)
    for start in (1, 2, 3, 4):
        img2dataset._WALKED.clear()
        _items(source, stop=start)  # an earlier batch walked the samples before `start`
        assert _items(source, start=start) == whole[start:], start


def test_a_resumed_read_of_a_truncated_shard_reports_the_damage(wds: Path, tmp_path: Path) -> None:
    data = (wds / "00000.tar").read_bytes()
    cut_at = _member_end(wds / "00000.tar", 29) + 512 + 700
    source = open_test_source(_tar_with_good_neighbour(tmp_path / "src", data[:cut_at], wds))
    whole = _items(source, stop=1000)
    assert _items(source, start=4, stop=8) == whole[4:8]
    assert _items(source, start=6, stop=1000) == whole[6:]
