"""What the models tests do with real pairs, in this process: ingest a shard of real anchor
pairs (the workers' batch code, no broker), run a re-encode's batches (a named model's build
or a switch), classify one image on a model; and `Rolled`, a second real image encoder."""

import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from asifdb.anchors.live import LiveModel
from asifdb.blobs import BlobStore
from asifdb.schemas.predictions import Classification
from asifdb.services import classify, ingestion, labelsets, models, reencode
from asifdb.services.model import Encoders, EncodersFor
from tests.samples import TEST_ROOTS, copy_samples

LABELS = ["dog", "cat", "car", "tree", "building", "food"]


class Rolled:
    """A real image encoder under another name, of the same width (1280), whose rows are the
    original's with the dimensions rolled: every cosine between two of its embeddings equals
    the original's, so a model on it answers exactly as the original model does."""

    modality = "image"

    def __init__(self, encoder: object, name: str = "rolled-lite0") -> None:
        self._encoder = encoder
        self.name = name

    def embed_batch(self, items: list[bytes]) -> np.ndarray:
        return np.roll(self._encoder.embed_batch(items), 640, axis=1)


def ingest_shard(
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    encoders: Encoders,
    folder: Path,
    shared_data: Path,
    *,
    n: int,
    offset: int,
    licence: str = "kept",
    collection: str = "default",
    encoders_for: EncodersFor | None = None,
    on_encoded: Callable[[], None] | None = None,
) -> None:
    """`n` real pairs (from the `offset`-th) as a webdataset shard in `folder`, ingested."""
    folder.mkdir()
    with tarfile.open(folder / "00000.tar", "w") as tar:
        copy_samples(shared_data, tar, n, offset=offset)
    with sessions.begin() as session:
        job = ingestion.start_job(
            session,
            roots=TEST_ROOTS,
            source=str(folder),
            license_name=licence,
            actor="test",
            collection=collection,
        )
        batches = ingestion.BATCHES.pending(session, job.id)
    for batch_id in batches:
        ingestion.process_batch(
            sessions=sessions,
            blobs=blobs,
            encoders=encoders,
            batch_id=batch_id,
            encoders_for=encoders_for,
            on_encoded=on_encoded,
        )


def run_reencode(
    sessions: sessionmaker[Session], blobs: BlobStore, encoders: Encoders, job_id: int
) -> list[str]:
    """Every pending batch of re-encode `job_id` by `encoders`: each batch's status."""
    with sessions() as session:
        batches = reencode.BATCHES.pending(session, job_id)
    return [
        reencode.process_batch(
            sessions=sessions, blobs=blobs, encoders_for=lambda i, t: encoders, batch_id=b
        ).status
        for b in batches
    ]


def add_model(
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    name: str,
    encoders: Encoders,
    *,
    k: int = 5,
    collection: str | None = None,
) -> None:
    """A named model of these encoders (p = 8), built to ready."""
    with sessions.begin() as session:
        job = models.add(
            session,
            name=name,
            image_encoder=encoders.image.name,
            text_encoder=encoders.text.name,
            k=k,
            p=8.0,
            collection=collection,
            actor="steward",
        )
    assert run_reencode(sessions, blobs, encoders, job.id)[-1] == "switched"


def classify_one(
    sessions: sessionmaker[Session],
    live: LiveModel,
    encoders: Encoders,
    image: bytes,
    *,
    k: int = 5,
    method: str = "exact",
    options: classify.Options | None = None,
    blobs: BlobStore | None = None,
) -> Classification:
    """`image` classified (recorded) among LABELS on `live`'s model: k, p = 8 and `method`,
    or `options` as a request leaves them; the image kept in `blobs` where given."""
    with sessions.begin() as session:
        [result] = classify.classify(
            session,
            live=live,
            encoders=encoders,
            images=[("query.jpg", image)],
            candidates=labelsets.candidates(session, labels=LABELS, templates="default"),
            options=options or classify.Options(k=k, p=8.0, method=method),  # type: ignore[arg-type]
            client="test",
            channel="cli",
            blobs=blobs,
        )
    return result


def first_image(sessions: sessionmaker[Session], blobs: BlobStore) -> bytes:
    """The first pair's image: a query that is an anchor."""
    with sessions() as session:
        sha = session.execute(
            text("SELECT image_sha256 FROM pairs ORDER BY id LIMIT 1")
        ).scalar_one()
    return blobs.get(sha)
