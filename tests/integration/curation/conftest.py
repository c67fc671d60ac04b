"""A seeded database for curation: real CIFAR-10 train pairs, a licence of mislabelled pairs,
and re-encoded copies of two images (near-duplicates). Cloned fresh for each test."""

import hashlib
import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy.engine import make_url

from asifdb.context import Platform
from asifdb.services import keys
from asifdb.services.model import Encoders
from asifdb.settings import Settings
from tests.conftest import create_database
from tests.samples import ingest_cifar_folders

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_CLASS = 6
# A tiny collection of small, hard images: k of two classes' pairs keeps enough neighbours for
# the leave-one-out scores to separate (k = 6 leaves many scores at 0).
K = 2 * PER_CLASS
P = 8.0
GOOD, NOISY, COPIES = "cifar", "noisy", "copies"
# Each of these train images is ingested a second time under the wrong class's caption.
SWAPS = {("cat", 10): "truck", ("truck", 10): "cat", ("frog", 10): "airplane"}
ROLES = ("app", "annotator", "steward", "auditor", "admin")


@dataclass(frozen=True)
class Seeded:
    server_url: str
    database: str
    blob_dir: Path
    keys: dict[str, str]
    noisy_captions: frozenset[str]
    copied: tuple[str, ...]  # image sha256 of the originals that have a near-duplicate

    def clone(self, data_dir: Path) -> str:
        shutil.copytree(self.blob_dir, data_dir / "blobs")
        return create_database(self.server_url, template=self.database)


def _train(shared_data: Path, name: str) -> list[Path]:
    return sorted((shared_data / "cifar10" / "train" / name).iterdir())


def _copy(image: Path, how: str) -> bytes:
    picture = Image.open(image).convert("RGB")
    if how == "resize":
        picture = picture.resize((48, 48), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=90)
    return out.getvalue()


@pytest.fixture(scope="session")
def seeded(
    pg_server: str, shared_data: Path, tmp_path_factory: pytest.TempPathFactory, encoders: Encoders
) -> Seeded:
    folder = tmp_path_factory.mktemp("curation-seed")
    url = create_database(pg_server)
    platform = Platform(Settings(database_url=url, data_dir=folder / "data"))
    platform.__dict__["encoders"] = encoders
    good, noisy, copies = folder / GOOD, folder / NOISY, folder / COPIES
    for name in CLASSES:
        (good / name).mkdir(parents=True)
        for image in _train(shared_data, name)[:PER_CLASS]:
            shutil.copyfile(image, good / name / image.name)
    for (name, n), wrong in SWAPS.items():
        (noisy / wrong).mkdir(parents=True, exist_ok=True)
        image = _train(shared_data, name)[n]
        shutil.copyfile(image, noisy / wrong / image.name)
    originals = [_train(shared_data, "ship")[0], _train(shared_data, "horse")[1]]
    for image, how in zip(originals, ("jpeg", "resize"), strict=True):
        target = copies / image.parent.name
        target.mkdir(parents=True, exist_ok=True)
        (target / f"{image.stem}-{how}.jpg").write_bytes(_copy(image, how))
    ingest_cifar_folders(platform, good, GOOD)
    ingest_cifar_folders(platform, noisy, NOISY)
    ingest_cifar_folders(platform, copies, COPIES)
    with platform.sessions.begin() as session:
        role_keys = {
            role: keys.create(session, name=f"{role}-key", role=role, actor="seed")
            for role in ROLES
        }
    platform.close()
    return Seeded(
        pg_server,
        make_url(url).database or "",
        platform.blobs.root,
        role_keys,
        frozenset(f"a photo of a {wrong}." for wrong in SWAPS.values()),
        tuple(hashlib.sha256(i.read_bytes()).hexdigest() for i in originals),
    )


@pytest.fixture
def platform(seeded: Seeded, tmp_path: Path, encoders: Encoders) -> Iterator[Platform]:
    """A platform on a fresh copy of the seeded database."""
    data_dir = tmp_path / "data"
    settings = Settings(database_url=seeded.clone(data_dir), data_dir=data_dir, k=K, p=P)
    platform = Platform(settings)
    platform.__dict__["encoders"] = encoders
    yield platform
    platform.close()
