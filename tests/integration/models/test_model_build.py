"""A model's build embeds only what the pairs lack (services/reencode.py `_stage`): a model that
shares the default's image encoder encodes no image (and so needs no blob: a pair whose blob
is lost still joins it), and its image rows are the stored ones, bit for bit."""

from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from asifdb.anchors.live import LiveModel
from asifdb.blobs import BlobStore
from asifdb.services import models
from asifdb.services.model import Encoders
from asifdb.settings import Settings
from tests.integration.models.building import (
    classify_one,
    first_image,
    ingest_shard,
    run_reencode,
)


class Counted:
    """A real encoder, under its own name or another, counting the items it embeds."""

    def __init__(self, encoder: object, name: str | None = None) -> None:
        self._encoder = encoder
        self.name = name or encoder.name  # type: ignore[attr-defined]
        self.modality = encoder.modality  # type: ignore[attr-defined]
        self.embedded = 0

    def embed_batch(self, items: list) -> np.ndarray:
        self.embedded += len(items)
        return self._encoder.embed_batch(items)  # type: ignore[attr-defined]


def test_a_model_sharing_the_image_encoder_encodes_only_captions(
    sessions: sessionmaker[Session], encoders: Encoders, shared_data: Path, tmp_path: Path
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    ingest_shard(sessions, blobs, encoders, tmp_path / "a", shared_data, n=10, offset=0)
    query = first_image(sessions, blobs)
    with sessions() as session:
        lost = session.execute(
            text("SELECT image_sha256 FROM pairs ORDER BY id DESC LIMIT 1")
        ).scalar_one()
    assert blobs.delete(lost)  # a lost blob: its pair cannot be re-encoded from its image
    image = Counted(encoders.image)
    captions = Counted(encoders.text, "minilm-copy")
    with sessions.begin() as session:
        job = models.add(
            session,
            name="captions",
            image_encoder=image.name,
            text_encoder=captions.name,
            k=5,
            p=8.0,
            collection=None,
            actor="steward",
            batch_size=4,
        )
    built = Encoders(image=image, text=captions)  # type: ignore[arg-type]
    assert run_reencode(sessions, blobs, built, job.id)[-1] == "switched"
    assert (image.embedded, captions.embedded) == (0, 10)
    with sessions() as session:
        listed = {m.name: m for m in models.list_models(session, Settings())}
        done, missing = session.execute(
            text("SELECT done, missing FROM reencodes WHERE id = :r"), {"r": job.id}
        ).one()
    assert (listed["captions"].usable_pairs, done, missing) == (10, 10, 0)
    with sessions.begin() as session:
        named = LiveModel(model="captions").view(session)
        default = LiveModel().view(session)
        assert np.array_equal(named.anchors.image, default.anchors.image)
    answer = classify_one(sessions, LiveModel(model="captions"), built, query)  # type: ignore[arg-type]
    assert (answer.model, answer.usable_pairs) == ("captions", 10)
