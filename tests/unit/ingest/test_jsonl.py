"""JSONL sources: local paths (relative and absolute), provenance fields, and every bad line
becoming a reject while the rest goes in."""

import json
from pathlib import Path

from asifdb.ingest import (
    RejectCode,
    SourceKind,
    ValidItem,
    count_items,
    iter_items,
    validate,
)
from tests.samples import open_test_source


def test_jsonl_lines_become_items_or_rejects(
    shared_data: Path, real_samples, tmp_path: Path, judge
) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "bucket.jpg").write_bytes(real_samples[0][1])
    # An absolute path (or file URI) is read where it lies under the source's root.
    (tmp_path / "cifar").mkdir()
    cifar_cat = tmp_path / "cifar" / "0064.png"
    cifar_cat.write_bytes((shared_data / "cifar10" / "train" / "cat" / "0064.png").read_bytes())
    lines = [
        {"image": "img/bucket.jpg", "caption": "a small bucket", "licence": "CC-BY-4.0"},
        {"image": str(cifar_cat), "caption": "a cat", "url": "https://example.org/cat.png"},
        {"image": "https://example.org/dog.jpg", "caption": "a dog"},
        {"image": "img/missing.jpg", "caption": "gone"},
        {"caption": "no image field"},
        {"image": "img/bucket.jpg", "caption": 42},
        {"image": "img/bucket.jpg", "caption": "\ud800 broken"},
        {"image": "img/bucket.jpg"},
        {"image": cifar_cat.as_uri(), "caption": "a cat, by file URI"},
    ]
    text = "\n".join(json.dumps(line) for line in lines)
    text += "\n\n{not json\n[1, 2]\n"
    path = tmp_path / "pairs.jsonl"
    path.write_text(text)
    source = open_test_source(path)

    items = list(iter_items(source))

    assert source.kind is SourceKind.JSONL
    assert count_items(source) == len(items) == 11
    assert judge(items) == {
        "pairs.jsonl:1": "ok",
        "pairs.jsonl:2": "ok",
        "pairs.jsonl:3": RejectCode.REMOTE_IMAGE,
        "pairs.jsonl:4": RejectCode.MISSING_IMAGE,
        "pairs.jsonl:5": RejectCode.BAD_RECORD,
        "pairs.jsonl:6": RejectCode.BAD_RECORD,
        "pairs.jsonl:7": RejectCode.CAPTION_NOT_UTF8,
        "pairs.jsonl:8": RejectCode.MISSING_CAPTION,
        "pairs.jsonl:9": "ok",
        "pairs.jsonl:11": RejectCode.BAD_RECORD,
        "pairs.jsonl:12": RejectCode.BAD_RECORD,
    }
    first, second = items[0], items[1]
    assert first.image_bytes == real_samples[0][1]
    assert first.metadata == {"licence": "CC-BY-4.0"}
    assert first.source_uri == (tmp_path / "img" / "bucket.jpg").relative_to(source.root).as_posix()
    assert second.image_bytes == cifar_cat.read_bytes()
    assert second.metadata == {"url": "https://example.org/cat.png"}
    assert "never fetched" in items[2].reject_reason.message
    missing = (tmp_path / "img" / "missing.jpg").relative_to(source.root).as_posix()
    assert (
        missing in items[3].reject_reason.message and "/tmp" not in items[3].reject_reason.message
    )
    result = validate(second)
    assert isinstance(result, ValidItem) and (result.width, result.format) == (32, "PNG")


def test_jsonl_positions_tile_the_lines(real_samples, tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(real_samples[0][1])
    lines = [json.dumps({"image": "a.jpg", "caption": f"caption {i}"}) for i in range(7)]
    path = tmp_path / "pairs.ndjson"
    path.write_text("\n".join(lines[:3]) + "\n   \n" + "\n".join(lines[3:]))
    source = open_test_source(path)

    everything = [item.caption for item in iter_items(source)]
    pieces = [
        item.caption
        for a, b in [(0, 2), (2, 5), (5, 7)]
        for item in iter_items(source, start=a, stop=b)
    ]

    assert everything == pieces == [f"caption {i}" for i in range(7)]
    assert [item.key for item in iter_items(source, start=3, stop=4)] == ["pairs.ndjson:5"]
