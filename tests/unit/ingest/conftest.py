"""Builders of real inputs for the ingestion tests: images, tar shards, real samples from the
tiny-imagenet webdataset, and a genuine decompression-bomb PNG."""

import io
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from PIL import Image

from asifdb.ingest import Rejected, SourceItem, ValidItem, validate

Sample = tuple[str, bytes, bytes, bytes]  # key, jpg, txt, json


@pytest.fixture(scope="session")
def wds(shared_data: Path) -> Path:
    return shared_data / "tiny-imagenet-pairs-wds"


@pytest.fixture(scope="session")
def real_samples(wds: Path) -> list[Sample]:
    """The first 20 samples of shard 00000, bytes as stored."""
    members: dict[str, dict[str, bytes]] = {}
    with tarfile.open(wds / "00000.tar") as tar:
        for member in tar:
            key, extension = member.name.split(".", 1)
            if len(members) == 20 and key not in members:
                break
            reader = tar.extractfile(member)
            assert reader is not None
            members.setdefault(key, {})[extension] = reader.read()
    return [(key, files["jpg"], files["txt"], files["json"]) for key, files in members.items()]


@pytest.fixture(scope="session")
def bomb_png() -> Callable[[int], bytes]:
    """A valid 1-bit PNG of side x side black pixels: a few KB that decode to side² pixels."""

    def build(side: int) -> bytes:
        row = b"\0" * (1 + (side + 7) // 8)  # filter byte + packed bits
        packer = zlib.compressobj(9)
        idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
        header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", idat)
            + _chunk(b"IEND", b"")
        )

    return build


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@pytest.fixture(scope="session")
def image_bytes() -> Callable[..., bytes]:
    """Encode a real image: image_bytes("PNG", (w, h), mode="L")."""

    def build(fmt: str = "JPEG", size: tuple[int, int] = (32, 32), mode: str = "RGB") -> bytes:
        buffer = io.BytesIO()
        Image.new(mode, size, color=128).save(buffer, format=fmt)
        return buffer.getvalue()

    return build


@pytest.fixture(scope="session")
def write_tar() -> Callable[[Path, Iterable[tuple[str, bytes]]], Path]:
    """Write a tar of (member name, bytes), in the order given."""

    def build(path: Path, members: Iterable[tuple[str, bytes]]) -> Path:
        with tarfile.open(path, "w") as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return path

    return build


@pytest.fixture(scope="session")
def judge() -> Callable[[Iterable[SourceItem]], dict[str, str]]:
    """Validate items into {key: "ok" or the reject code}."""

    def run(items: Iterable[SourceItem]) -> dict[str, str]:
        verdicts: dict[str, str] = {}
        for item in items:
            result = validate(item)
            assert isinstance(result, ValidItem | Rejected)
            verdicts[item.key] = "ok" if isinstance(result, ValidItem) else result.reason.code
        return verdicts

    return run
