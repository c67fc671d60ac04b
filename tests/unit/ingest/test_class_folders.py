"""Class-folder sources: captions from a template and the folder name (or a class-name map)."""

from pathlib import Path

import pytest

from asifdb.ingest import (
    RejectCode,
    SourceError,
    SourceKind,
    count_items,
    iter_items,
)
from tests.samples import open_test_source


def test_cifar10_train_with_a_template(shared_data: Path, judge) -> None:
    root = shared_data / "cifar10" / "train"
    source = open_test_source(root, template="a photo of a {}.")

    items = list(iter_items(source))

    assert source.kind is SourceKind.CLASS_FOLDERS
    assert count_items(source) == len(items) == 1000
    classes = sorted(folder.name for folder in root.iterdir())
    assert [item.key.split("/")[0] for item in items[::100]] == classes
    for item in items:
        folder, name = item.key.split("/")
        assert item.caption == f"a photo of a {folder}."
        assert item.image_bytes == (root / folder / name).read_bytes()
        assert item.metadata == {"class_folder": folder, "class_name": folder}
    assert set(judge(items).values()) == {"ok"}
    cats = list(iter_items(source, start=300, stop=400))
    assert {item.key.split("/")[0] for item in cats} == {"cat"}


def test_classnames_file_maps_folders_to_names(shared_data: Path) -> None:
    tiny = shared_data / "tiny-imagenet"
    source = open_test_source(
        tiny / "val", template="a photo of a {}.", classnames=tiny / "classnames.txt"
    )
    item = next(iter_items(source))
    assert item.key.startswith("n01443537/")
    assert item.caption == "a photo of a goldfish."
    assert item.metadata == {"class_folder": "n01443537", "class_name": "goldfish"}


def test_underscores_mapping_and_non_images(image_bytes, tmp_path: Path, judge) -> None:
    for folder in ("sea_lake", "annual_crop", ".hidden"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "1.png").write_bytes(image_bytes("PNG", (64, 64)))
    (tmp_path / "sea_lake" / "notes.txt").write_text("not an image")
    (tmp_path / "sea_lake" / ".DS_Store").write_bytes(b"\0\0")
    source = open_test_source(
        tmp_path, template="a satellite image of {}", classnames={"annual_crop": "farmland"}
    )

    items = list(iter_items(source))

    assert [(item.key, item.caption) for item in items] == [
        ("annual_crop/1.png", "a satellite image of farmland"),
        ("sea_lake/1.png", "a satellite image of sea lake"),
        ("sea_lake/notes.txt", "a satellite image of sea lake"),
    ]
    assert judge(items)["sea_lake/notes.txt"] == RejectCode.NOT_AN_IMAGE


@pytest.mark.parametrize(
    ("template", "fix"),
    [(None, "template"), ("a photo", "{}"), ("a {name}", "{}"), ("{} and {}", "{}")],
)
def test_class_folders_need_a_usable_template(
    template: str | None, fix: str, shared_data: Path
) -> None:
    with pytest.raises(SourceError, match=fix.replace("{", r"\{").replace("}", r"\}")):
        open_test_source(shared_data / "cifar10" / "train", kind="class_folders", template=template)
