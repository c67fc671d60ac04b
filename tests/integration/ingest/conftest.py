"""Fixtures for ingestion tests: a webdataset folder of real samples with bad items mixed in."""

import tarfile
from pathlib import Path

import pytest

from tests.samples import BAD, add_member, copy_samples, real_jpeg


@pytest.fixture
def mixed_shards(tmp_path: Path, shared_data: Path) -> tuple[Path, list[str]]:
    """A webdataset folder: 2 shards of real samples (60 in all), with 4 bad items mixed in."""
    folder = tmp_path / "wds"
    folder.mkdir()
    good: list[str] = []
    with tarfile.open(folder / "00000.tar", "w") as tar:
        good += copy_samples(shared_data, tar, 30)
        for key, (ext, data, caption) in BAD.items():
            add_member(tar, f"{key}.{ext}", real_jpeg() if data is None else data)
            add_member(tar, f"{key}.txt", caption.encode())
    with tarfile.open(folder / "00001.tar", "w") as tar:
        good += copy_samples(shared_data, tar, 30, offset=30)
    return folder, good
