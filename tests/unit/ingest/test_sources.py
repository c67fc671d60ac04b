"""open_source: layout detection, and SourceError messages that name the fix."""

import dataclasses
from pathlib import Path

import pytest

from asifdb.errors import InvalidInput
from asifdb.ingest import Source, SourceError, SourceKind, count_items
from tests.samples import open_test_source


@pytest.mark.parametrize(
    ("relative", "kind"),
    [
        ("tiny-imagenet-pairs-wds", SourceKind.WEBDATASET),
        ("tiny-imagenet-pairs-wds/00003.tar", SourceKind.WEBDATASET),
    ],
)
def test_detects_webdataset(relative: str, kind: SourceKind, shared_data: Path) -> None:
    assert open_test_source(shared_data / relative).kind is kind


def test_single_shard_uses_its_stats(shared_data: Path) -> None:
    assert (
        count_items(open_test_source(shared_data / "tiny-imagenet-pairs-wds" / "00003.tar")) == 1000
    )


def test_source_rebuilds_from_stored_plain_values(shared_data: Path) -> None:
    source = open_test_source(
        shared_data / "cifar10" / "train", template="a photo of a {}.", classnames={"cat": "kitty"}
    )
    stored = {
        **dataclasses.asdict(source),
        "kind": str(source.kind),
        "path": str(source.path),
        "root": str(source.root),
    }
    assert Source(**stored) == source


@pytest.mark.parametrize(
    ("build", "arguments", "fix"),
    [
        (lambda tmp: tmp / "nowhere", {}, "does not exist"),
        (lambda tmp: _file(tmp / "pairs.csv"), {}, "pass kind="),
        (lambda tmp: tmp, {}, "holds no .tar shards"),
        (lambda tmp: _folder(tmp / "classes" / "cat"), {}, "pass a caption template"),
        (lambda tmp: tmp, {"kind": "parquet"}, "use one of webdataset, files, jsonl"),
        (lambda tmp: _file(tmp / "a.jsonl"), {"template": "a {}"}, "class folders only"),
        (lambda tmp: tmp, {"kind": "jsonl"}, "is a folder"),
        (lambda tmp: _folder(tmp / "x"), {"kind": "webdataset"}, "nothing to read as webdataset"),
        (
            lambda tmp: _folder(tmp / "c" / "x"),
            {"template": "{}", "classnames": "/tmp/no/file"},
            "folder<TAB>name",
        ),
    ],
)
def test_unusable_sources_raise_with_the_fix(
    build, arguments: dict, fix: str, tmp_path: Path
) -> None:
    with pytest.raises(SourceError, match=fix) as raised:
        open_test_source(build(tmp_path), **arguments)
    assert isinstance(raised.value, InvalidInput)


def _file(path: Path) -> Path:
    path.write_text("x")
    return path


def _folder(path: Path) -> Path:
    path.mkdir(parents=True)
    return path.parent
