"""A seeded database for the UI and browser tests: real CIFAR-10 pairs, a key for every role.

The ship pairs are the only ones under the licence `ships`: revoking it takes every ship
anchor out of the model, so a ship photo is then classified as something else.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from asifdb.context import Platform
from asifdb.services import keys
from asifdb.services.model import Encoders
from asifdb.settings import Settings
from tests.conftest import create_database
from tests.samples import ingest_cifar_folders

CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
ROLES = ("app", "annotator", "steward", "auditor", "admin")
PER_CLASS = 12
# The collection is tiny: with k = one class's pairs, a representation keeps about one class's
# anchors, as k << n does at the paper's scale (with k >= n every anchor counts and the
# identical captions of a class make the scores degenerate).
K = PER_CLASS
SHIP_LICENCE = "ships"
OTHER_LICENCE = "cifar"


@dataclass(frozen=True)
class Seeded:
    """A migrated, seeded database to clone, the blob store its pairs' images are in, and keys."""

    server_url: str
    database: str
    blob_dir: Path
    keys: dict[str, str]

    def clone(self, data_dir: Path) -> str:
        """A fresh copy of the seeded database, and of its blobs under `data_dir`; its URL."""
        shutil.copytree(self.blob_dir, data_dir / "blobs")
        return create_database(self.server_url, template=self.database)


def _class_folders(shared_data: Path, out: Path, classes: list[str]) -> Path:
    for name in classes:
        target = out / name
        target.mkdir(parents=True)
        for image in sorted((shared_data / "cifar10" / "train" / name).iterdir())[:PER_CLASS]:
            (target / image.name).write_bytes(image.read_bytes())
    return out


def seed(server_url: str, shared_data: Path, folder: Path, encoders: Encoders) -> Seeded:
    """Ingest CIFAR-10 train images (ships under `ships`, the rest under `cifar`) in-process."""
    url = create_database(server_url)
    platform = Platform(Settings(database_url=url, data_dir=folder / "data"))
    platform.__dict__["encoders"] = encoders  # the run's loaded encoders, not a fresh load
    others = [c for c in CIFAR if c != "ship"]
    ingest_cifar_folders(
        platform, _class_folders(shared_data, folder / "cifar", others), OTHER_LICENCE
    )
    ingest_cifar_folders(
        platform, _class_folders(shared_data, folder / "ships", ["ship"]), SHIP_LICENCE
    )
    with platform.sessions.begin() as session:
        role_keys = {
            role: keys.create(session, name=f"{role}-key", role=role, actor="seed")
            for role in ROLES
        }
    platform.close()  # no connection may stay open on a database that is cloned
    return Seeded(server_url, make_url(url).database or "", platform.blobs.root, role_keys)
