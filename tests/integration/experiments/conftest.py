"""Small real copies of the results' data: a seeded anchors database and labelled folders.

Each experiment of asifdb.experiments runs here on a few images and pairs, so its script cannot rot.
"""

import shutil
import tarfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from asifdb.context import Platform
from asifdb.experiments.anchors_db import ANCHORS_LICENCE, clone, ingest
from asifdb.experiments.datasets import LabelledSet
from asifdb.experiments.memo_encoder import MemoImageEncoder
from asifdb.services.model import Encoders
from asifdb.settings import Settings
from tests.conftest import create_database, setup_url
from tests.samples import copy_samples

ANCHOR_PAIRS = 160


@dataclass(frozen=True)
class Data:
    """Labelled folders copied from shared/data, small enough for CI."""

    cifar_test: LabelledSet
    tiny_val: LabelledSet
    cifar_train: Path


def _copy_classes(source: Path, target: Path, classes: int, per_class: int) -> Path:
    for folder in sorted(p for p in source.iterdir() if p.is_dir())[:classes]:
        (target / folder.name).mkdir(parents=True)
        for image in sorted(folder.iterdir())[:per_class]:
            shutil.copyfile(image, target / folder.name / image.name)
    return target


@pytest.fixture(scope="session")
def data(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Data:
    root = tmp_path_factory.mktemp("results-data")
    tiny = shared_data / "tiny-imagenet"
    return Data(
        cifar_test=LabelledSet(
            "CIFAR-10 test (CI copy)",
            _copy_classes(shared_data / "cifar10" / "test", root / "cifar-test", 10, 3),
            # ImageNet's 7 templates, not CIFAR's 18: prompts are encoded once per platform.
            "imagenet",
        ),
        tiny_val=LabelledSet(
            "Tiny-ImageNet val (CI copy)",
            _copy_classes(tiny / "val", root / "tiny-val", 4, 3),
            "imagenet",
            tiny / "classnames.txt",
        ),
        cifar_train=_copy_classes(shared_data / "cifar10" / "train", root / "cifar-train", 10, 3),
    )


@pytest.fixture(scope="session")
def lab_encoders(encoders: Encoders, tmp_path_factory: pytest.TempPathFactory) -> Encoders:
    """The run's encoders, the image one remembering images as the experiment scripts' does."""
    memo = MemoImageEncoder(encoders.image, tmp_path_factory.mktemp("memo") / "images.npz")
    return Encoders(image=memo, text=encoders.text)


@pytest.fixture(scope="session")
def lab_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data folder (blobs) of the anchors' ingest and of every platform on a clone: a
    re-encode reads the anchors' images back."""
    return tmp_path_factory.mktemp("lab-data")


@pytest.fixture(scope="session")
def anchors_url(
    pg_server: str,
    lab_encoders: Encoders,
    lab_data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    shared_data: Path,
) -> str:
    """A database holding the first real pairs of the anchor shards, ingested by the platform."""
    url = create_database(pg_server)
    wds = tmp_path_factory.mktemp("wds")
    with tarfile.open(wds / "00000.tar", "w") as tar:
        copy_samples(shared_data, tar, ANCHOR_PAIRS)
    platform = _platform(url, lab_encoders, lab_data_dir)
    report = ingest(platform, wds, licence=ANCHORS_LICENCE, batch_size=128)
    platform.close()
    assert report.done == ANCHOR_PAIRS
    return url


def _platform(url: str, encoders: Encoders, data_dir: Path) -> Platform:
    # The set-up URL too: the ANN benchmark builds the HNSW index, which is schema work.
    settings = Settings(database_url=url, admin_database_url=setup_url(url), data_dir=data_dir)
    platform = Platform(settings)
    platform.__dict__["encoders"] = encoders  # the run's loaded encoders, not a fresh load
    return platform


@pytest.fixture
def lab(
    anchors_url: str, lab_encoders: Encoders, lab_data_dir: Path
) -> Iterator[Callable[[str], Platform]]:
    """Platforms on fresh clones of the anchors database, as `experiment_platform` makes them."""
    made: list[Platform] = []

    def make(name: str) -> Platform:
        url = clone(anchors_url, f"{name}_{uuid.uuid4().hex[:8]}")
        platform = _platform(url, lab_encoders, lab_data_dir)
        made.append(platform)
        return platform

    yield make
    for platform in made:
        platform.close()
