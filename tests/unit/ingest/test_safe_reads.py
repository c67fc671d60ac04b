"""Local sources are read safely: only regular files under the source's root, bounded, never an
open that blocks, and no reject reason quoting a file (real files, FIFOs, links, devices)."""

import json
import os
import tarfile
from pathlib import Path

import pytest

from asifdb.errors import Forbidden
from asifdb.ingest import Limits, RejectCode, iter_items, open_source, validate
from asifdb.ingest.local_files import LocalFileError, read_file
from asifdb.ingest.roots import locate

SECRET = "root:x:0:0:the-secret-line\n"


def _reasons(items) -> dict[str, tuple[str, str]]:
    """Each item's verdict after validation: (code, message), or ("ok", "")."""
    out = {}
    for item in items:
        judged = validate(item)
        out[item.key] = (
            (str(judged.reason.code), judged.reason.message)
            if hasattr(judged, "reason")
            else ("ok", "")
        )
    return out


@pytest.fixture
def tree(tmp_path: Path, shared_data: Path) -> tuple[Path, Path]:
    """A root holding a real image, and a secret beside it (outside the root)."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    cat = next((shared_data / "cifar10" / "test" / "cat").glob("*.png"))
    (root / "cat.png").write_bytes(cat.read_bytes())
    return root, outside


def _jsonl(root: Path, images: list[str]) -> Path:
    path = root / "pairs.jsonl"
    path.write_text("".join(json.dumps({"image": i, "caption": "a cat"}) + "\n" for i in images))
    return path


def test_jsonl_entries_naming_system_files_are_refused_unread(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    images = ["cat.png", "/etc/passwd", "/etc/shadow", "../../../../../../etc/passwd"]
    images += [str(outside / "secret.txt"), "file:///etc/passwd", "/dev/zero"]
    source = open_source(_jsonl(root, images), roots=[root])
    items = list(iter_items(source))
    verdicts = _reasons(items)
    assert verdicts.pop("pairs.jsonl:1") == ("ok", "")
    assert {code for code, _ in verdicts.values()} == {RejectCode.OUTSIDE_SOURCE}
    assert all(item.image_bytes is None for item in items[1:])
    for item in items:
        stored = repr((item.source_uri, item.reject_reason, item.metadata))
        # Neither the file's bytes nor a path outside the root reach the report or provenance.
        assert "x:0:0" not in stored and "/etc" not in stored and str(outside) not in stored


def test_a_symlink_out_of_the_root_never_becomes_a_caption(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    shard = root / "00000"
    shard.mkdir()
    (shard / "000000000.png").write_bytes((root / "cat.png").read_bytes())
    (shard / "000000000.txt").symlink_to(outside / "secret.txt")
    (shard / "000000001.png").symlink_to(outside / "secret.txt")
    (shard / "000000001.txt").write_text("a cat")
    source = open_source(root, roots=[root], kind="files")
    items = list(iter_items(source))
    assert [i.caption for i in items] == [None, "a cat"]
    assert [i.reject_reason.code for i in items] == [RejectCode.OUTSIDE_SOURCE] * 2
    assert SECRET.strip() not in repr(items) and "the-secret" not in repr(items)


def test_a_symlink_inside_the_root_is_read(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "cat").mkdir()
    (root / "cat" / "linked.png").symlink_to(root / "cat.png")
    source = open_source(root, roots=[root], template="a photo of a {}.")
    (item,) = iter_items(source)
    assert item.reject_reason is None and item.source_uri == "cat/linked.png"


def test_a_class_folder_linked_out_of_the_root_is_not_listed(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "cat").mkdir()
    (root / "cat" / "a.png").write_bytes((root / "cat.png").read_bytes())
    (root / "escape").symlink_to(outside)
    source = open_source(root, roots=[root], template="a photo of a {}.")
    assert [item.key for item in iter_items(source)] == ["cat/a.png"]


@pytest.mark.timeout(20)
def test_a_fifo_named_as_an_image_is_refused_without_blocking(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "cat").mkdir()
    os.mkfifo(root / "cat" / "pipe.png")
    os.mkfifo(root / "pipe.jpg")
    (root / "cat" / "real.png").write_bytes((root / "cat.png").read_bytes())
    folders = open_source(root, roots=[root], template="a photo of a {}.")
    lines = open_source(_jsonl(root, ["pipe.jpg", "cat/pipe.png"]), roots=[root])
    verdicts = _reasons([*iter_items(folders), *iter_items(lines)])
    assert verdicts["cat/real.png"] == ("ok", "")
    for key in ("cat/pipe.png", "pairs.jsonl:1", "pairs.jsonl:2"):
        code, message = verdicts[key]
        assert code == RejectCode.NOT_A_FILE and "FIFO" in message


@pytest.mark.timeout(20)
def test_a_fifo_shard_and_a_fifo_stats_file_do_not_hang_a_webdataset(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "00000.tar")
    os.mkfifo(tmp_path / "00001_stats.json")
    with tarfile.open(tmp_path / "00001.tar", "w"):
        pass
    source = open_source(tmp_path, roots=[tmp_path], kind="webdataset")
    items = list(iter_items(source))
    assert [i.reject_reason.code for i in items if i.key == "00000.tar"] == [
        RejectCode.CORRUPT_SHARD
    ]
    assert "FIFO" in items[0].reject_reason.message


def test_devices_and_folders_are_refused_before_any_read() -> None:
    with pytest.raises(LocalFileError) as device:
        read_file("/dev/zero", root=Path("/dev"), limit=10)
    assert device.value.reason.code == RejectCode.NOT_A_FILE
    assert "character device" in device.value.reason.message
    with pytest.raises(LocalFileError) as folder:
        read_file("/dev/shm", root=Path("/dev"), limit=10)
    assert "folder" in folder.value.reason.message


def test_reads_stop_at_their_limit(tmp_path: Path) -> None:
    (tmp_path / "00000").mkdir()
    (tmp_path / "00000" / "0.png").write_bytes(b"\x89PNG" + bytes(5000))
    (tmp_path / "00000" / "0.txt").write_text("x" * 3000)
    long = json.dumps({"image": "00000/0.png", "caption": "y" * 3000})
    (tmp_path / "long.jsonl").write_text(long + "\n" + "\n")
    limits = Limits(max_image_bytes=1000, max_text_bytes=2000)
    files = list(iter_items(open_source(tmp_path, roots=[tmp_path], kind="files"), limits=limits))
    assert files[0].reject_reason.code == RejectCode.IMAGE_TOO_LARGE
    source = open_source(tmp_path / "long.jsonl", roots=[tmp_path])
    (line,) = iter_items(source, limits=limits)
    assert line.reject_reason.code == RejectCode.BAD_RECORD and "yyy" not in repr(line)
    with pytest.raises(LocalFileError, match="over the limit"):
        read_file(tmp_path / "00000" / "0.txt", root=tmp_path, limit=100)


def test_reject_reasons_never_quote_the_file(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "passwd.png").write_text(SECRET)
    (tmp_path / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"SECRETCHUNK" * 8)
    source = open_source(tmp_path, roots=[tmp_path], template="a photo of a {}.")
    verdicts = _reasons(iter_items(source))
    assert {code for code, _ in verdicts.values()} <= {"not_an_image", "corrupt_image"}
    for _, message in verdicts.values():
        assert "the-secret" not in message and "SECRET" not in message and "x:0" not in message


def test_sources_outside_the_roots_are_refused_naming_no_path(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "escape").symlink_to(outside)
    refused = [
        "/etc",
        "/etc/shadow",
        "/no/such/place",
        str(outside),
        str(root / "escape"),
        str(root / ".." / "outside"),
        str(root / "escape" / "secret.txt"),
    ]
    for path in refused:
        with pytest.raises(Forbidden) as error:
            open_source(path, roots=[root], kind="jsonl")
        message = str(error.value)
        assert "SOURCE_ROOTS" in message and str(outside) not in message and "/etc" not in message
        assert "no/such" not in message and "escape" not in message
    with pytest.raises(Forbidden, match="SOURCE_ROOTS is empty"):
        locate(root, roots=[], what="source")
    assert locate(root / "sub" / ".." / "cat.png", roots=[root], what="x").relative == "cat.png"
