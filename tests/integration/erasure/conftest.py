"""The erasure tests' world: two licences of real pairs (one to erase, one to keep, sharing one
image), real encoders, the real database and blob store; helpers that search the database's
own files for a pair's bytes, independently of the erasure's report."""

import tarfile
from pathlib import Path

import numpy as np
import psycopg
import pytest
from sqlalchemy.engine import make_url

from asifdb.anchors.live import LiveModel
from asifdb.anchors.store import fetch_binary
from asifdb.context import Platform
from asifdb.services import classify, erasure, labelsets, licences
from asifdb.services import retrieve as retrieve_service
from asifdb.services.model import Encoders
from asifdb.settings import Settings
from tests.conftest import server_folder, setup_url
from tests.samples import add_member, copy_samples, ingest_now

GONE, KEPT = "withdrawn", "kept"
N = 10


def database_files(db_url: str) -> list[Path]:
    """Every file of this database's folder (all its tables, indexes, TOAST), not only the
    tables erasure rewrites: a table it forgot would show here."""
    url = make_url(setup_url(db_url)).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        oid = conn.execute(
            "SELECT oid FROM pg_database WHERE datname = current_database()"
        ).fetchone()[0]
    return sorted(p for p in (server_folder(db_url) / "base" / str(oid)).iterdir() if p.is_file())


def pairs_found(files: list[Path], patterns: dict[int, list[bytes]]) -> set[int]:
    """Pair ids any of whose patterns is in any of the files."""
    blobs = [f.read_bytes() for f in files]
    return {pid for pid, pats in patterns.items() if any(p in b for p in pats for b in blobs)}


def byte_patterns(platform: Platform, licence: str) -> dict[int, list[bytes]]:
    """Each pair's text embedding as stored (two 32-byte windows) and its caption's bytes."""
    with platform.sessions() as session:
        rows = fetch_binary(
            session,
            "SELECT p.id, e.embedding, p.caption FROM pairs p JOIN licenses l "
            "ON l.id = p.license_id JOIN pair_embeddings e ON e.pair_id = p.id "
            "JOIN encoders c ON c.name = e.encoder AND c.modality = 'text' "
            "WHERE l.name = %(n)s ORDER BY p.id",
            {"n": licence},
        )
    out: dict[int, list[bytes]] = {}
    for pair_id, emb, caption in rows:
        little = np.asarray(emb).astype("<f2")
        out[pair_id] = [little[40:56].tobytes(), little[300:316].tobytes(), caption.encode()]
    return out


def make_shard(shared_data: Path, folder: Path, *, offset: int, extra: bytes | None = None) -> Path:
    folder.mkdir()
    with tarfile.open(folder / "00000.tar", "w") as tar:
        copy_samples(shared_data, tar, N, offset=offset)
        if extra is not None:  # the same image bytes as a pair of the other licence
            add_member(tar, "shared.jpg", extra)
            add_member(tar, "shared.txt", b"the same photograph, licensed again separately")
    return folder


def anchor_image(shared_data: Path, index: int = 0) -> bytes:
    """The bytes of the default collection's `index`-th image (0 to N - 1: the withdrawn
    licence's; the first is also the kept licence's)."""
    with tarfile.open(shared_data / "tiny-imagenet-pairs-wds" / "00000.tar") as src:
        name = sorted(m for m in src.getnames() if m.endswith(".jpg"))[index]
        return src.extractfile(name).read()  # type: ignore[union-attr]


@pytest.fixture
def platform(db_url: str, tmp_path: Path, encoders: Encoders, shared_data: Path) -> Platform:
    settings = Settings(database_url=db_url, data_dir=tmp_path / "data")
    platform = Platform(settings)
    platform.__dict__["encoders"] = encoders
    ingest_now(platform, make_shard(shared_data, tmp_path / "gone", offset=0), GONE)
    extra = anchor_image(shared_data)
    ingest_now(platform, make_shard(shared_data, tmp_path / "kept", offset=N, extra=extra), KEPT)
    return platform


def cat_image(shared_data: Path) -> bytes:
    return (shared_data / "cifar10" / "test" / "cat").iterdir().__next__().read_bytes()


def classify_one(platform: Platform, image: bytes, *, live: "LiveModel | None" = None) -> int:
    """A recorded classification of `image` (its bytes kept as the query image): its id."""
    with platform.sessions.begin() as session:
        [result] = classify.classify(
            session,
            live=live or platform.live,
            encoders=platform.encoders,
            images=[("query.png", image)],
            candidates=labelsets.check(["cat", "dog", "ship"], None),
            options=classify.Options(k=12, p=8.0),
            client="test",
            channel="api",
            blobs=platform.blobs,
        )
    return int(result.prediction_id)


def use_model(platform: Platform, shared_data: Path) -> tuple[int, int]:
    """A recorded classification and a recorded retrieval over the whole collection."""
    image = cat_image(shared_data)
    classified = classify_one(platform, image)
    with platform.sessions.begin() as session:
        hits = retrieve_service.retrieve(
            session,
            live=platform.live,
            encoders=platform.encoders,
            direction="image_to_text",
            image=("cat.png", image),
            options=classify.Options(k=12, p=8.0),
            top=2 * N,
            client="test",
            channel="api",
        )
    return classified, hits.prediction_id


def erase_gone(
    platform: Platform, pgdata: Path | None, *, licence: str = GONE, **kw: object
) -> erasure.ErasureReport:
    """Erase `licence` (the withdrawn one unless named) as a steward, checked against this
    process's model."""
    return erasure.erase(
        sessions=platform.sessions,
        engine=platform.engine,
        blobs=platform.blobs,
        licence=licence,
        reason="the rights holder withdrew consent",
        actor="steward",
        pgdata=pgdata,
        live=platform.live,
        **kw,  # type: ignore[arg-type]
    )


def revoke_gone(platform: Platform, licence: str = GONE) -> None:
    with platform.sessions.begin() as session:
        licences.revoke(session, licence=licence, reason="withdrawn", actor="steward")
