"""Real inputs and loaded encoders for the encoder tests: samples of the default webdataset
collection and Tiny-ImageNet validation images, each encoder loaded once per run."""

import json
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from asifdb.encoders import Encoder, get_encoder


@pytest.fixture(scope="session")
def _pairs(shared_data: Path) -> list[dict[str, bytes]]:
    """The first 200 pairs of shard 00000 (jpg, txt, json), bytes as stored."""
    files: dict[str, dict[str, bytes]] = {}
    with tarfile.open(shared_data / "tiny-imagenet-pairs-wds" / "00000.tar") as tar:
        for member in tar:
            key, extension = member.name.split(".", 1)
            if len(files) == 200 and key not in files:
                break
            reader = tar.extractfile(member)
            assert reader is not None
            files.setdefault(key, {})[extension] = reader.read()
    return list(files.values())


@pytest.fixture(scope="session")
def jpegs(_pairs: list[dict[str, bytes]]) -> list[bytes]:
    """200 real 64x64 JPEGs of the default collection, in shard order."""
    return [pair["jpg"] for pair in _pairs]


@pytest.fixture(scope="session")
def captions(_pairs: list[dict[str, bytes]]) -> list[str]:
    """Their captions."""
    return [pair["txt"].decode() for pair in _pairs]


@pytest.fixture(scope="session")
def wnids(_pairs: list[dict[str, bytes]]) -> list[str]:
    """Their classes (ImageNet wnids)."""
    return [json.loads(pair["json"])["wnid"] for pair in _pairs]


@pytest.fixture(scope="session")
def val_dir(shared_data: Path) -> Path:
    """Tiny-ImageNet validation images, one folder per ImageNet wnid."""
    return shared_data / "tiny-imagenet" / "val"


@pytest.fixture(scope="session")
def gray_jpeg(val_dir: Path) -> Path:
    """A single-channel JPEG of Tiny-ImageNet val (168 of its images are)."""
    for path in sorted(val_dir.glob("*/*.JPEG")):
        with Image.open(path) as image:
            if image.mode == "L":
                return path
    raise AssertionError("Tiny-ImageNet val has grayscale images")


@pytest.fixture(scope="session")
def encoder_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("encoder-cache")


@pytest.fixture(scope="session")
def image_encoder(encoder_cache: Path) -> Encoder:
    """The default image encoder as a worker gets it (on this CPU: the OpenVINO runtime)."""
    return get_encoder("tf_efficientnet_lite0", cache_dir=encoder_cache)


@pytest.fixture(scope="session")
def torch_image_encoder() -> Encoder:
    """The same encoder on the reference runtime: torch, fp32."""
    return get_encoder("tf_efficientnet_lite0", runtime="torch", device="cpu")


@pytest.fixture(scope="session")
def text_encoder() -> Encoder:
    return get_encoder("all-MiniLM-L6-v2")
