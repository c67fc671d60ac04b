"""Several models over one collection (services/models.py): the real database, the real
encoders. A named model of other widths is built beside the default one without changing the
default's answers, then both answer side by side; a revocation leaves both at once; pairs added
since a build join the named model when it is built again; a model's definition is fixed."""

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from asifdb.anchors.live import LiveModel
from asifdb.blobs import BlobStore
from asifdb.errors import ConfigError, Conflict
from asifdb.services import licences, models
from asifdb.services.model import Encoders
from asifdb.settings import Settings
from tests.integration.models.building import classify_one, ingest_shard, run_reencode


class Narrow:
    """A real image encoder whose rows are cut to 64 dimensions: a model of another width."""

    name, modality, dim = "narrow-lite0", "image", 64

    def __init__(self, encoder: object) -> None:
        self._encoder = encoder

    def embed_batch(self, items: list[bytes]) -> np.ndarray:
        return self._encoder.embed_batch(items)[:, :64]


def test_two_models_of_other_widths_answer_side_by_side_and_a_revocation_leaves_both(
    sessions: sessionmaker[Session], encoders: Encoders, shared_data: Path, tmp_path: Path
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    ingest_shard(
        sessions, blobs, encoders, tmp_path / "a", shared_data, licence="kept", n=14, offset=0
    )
    ingest_shard(
        sessions, blobs, encoders, tmp_path / "b", shared_data, licence="withdrawn", n=6, offset=14
    )
    query = blobs.get(
        sessions().execute(text("SELECT image_sha256 FROM pairs ORDER BY id LIMIT 1")).scalar_one()
    )
    narrow = Encoders(image=Narrow(encoders.image), text=encoders.text)
    default_live, narrow_live = LiveModel(), LiveModel(model="narrow")
    before = classify_one(sessions, default_live, encoders, query, k=5)

    with sessions.begin() as session:
        job = models.add(
            session,
            name="narrow",
            image_encoder=narrow.image.name,
            text_encoder=narrow.text.name,
            k=4,
            p=8.0,
            collection=None,
            actor="steward",
            batch_size=8,
        )
    # Building: the named model answers nothing, the default answers as before.
    with pytest.raises(Conflict, match="building"), sessions() as session:
        models.resolve(session, Settings(), "narrow")
    statuses = run_reencode(sessions, blobs, narrow, job.id)
    assert statuses[-1] == "switched" and len(statuses) == 3
    during = classify_one(sessions, default_live, encoders, query, k=5)
    assert (during.label, during.score, during.model) == (before.label, before.score, "default")

    with sessions() as session:
        ref = models.resolve(session, Settings(), "narrow")
        listed = {m.name: m for m in models.list_models(session, Settings())}
        widths = dict(session.execute(text("SELECT name, dim FROM encoders")).all())
    assert (ref.k, ref.image_encoder) == (4, "narrow-lite0")
    assert listed["narrow"].status == "ready" and listed["narrow"].usable_pairs == 20
    assert widths["narrow-lite0"] == 64 and widths[encoders.image.name] == 1280
    # Side by side: each model answers from its own embeddings, and records which it was.
    named = classify_one(sessions, narrow_live, narrow, query, k=4)
    default = classify_one(sessions, default_live, encoders, query, k=5)
    assert named.model == "narrow" and default.model == "default"
    assert named.usable_pairs == default.usable_pairs == 20
    assert narrow_live.view(sessions()).anchors.image.shape == (20, 64)
    with sessions() as session:
        recorded = dict(
            session.execute(
                text("SELECT id, model FROM predictions WHERE id IN (:a, :b)"),
                {"a": named.prediction_id, "b": default.prediction_id},
            ).all()
        )
    assert recorded == {named.prediction_id: "narrow", default.prediction_id: "default"}
    # The wrong encoders for a named model are refused in the query's own snapshot.
    with pytest.raises(Conflict, match="narrow-lite0"):
        classify_one(sessions, narrow_live, encoders, query, k=4)

    # A revocation: its pairs leave both models at the next query.
    with sessions.begin() as session:
        licences.revoke(session, licence="withdrawn", reason="withdrawn", actor="steward")
        gone = set(
            session.scalars(
                text(
                    "SELECT p.id FROM pairs p JOIN licenses l ON l.id = p.license_id "
                    "WHERE l.name = 'withdrawn'"
                )
            )
        )
    for live, enc, k in ((narrow_live, narrow, 4), (default_live, encoders, 5)):
        answer = classify_one(sessions, live, enc, query, k=k)
        assert answer.usable_pairs == 14
        with sessions() as session:
            carried = set(
                session.scalars(
                    text("SELECT pair_id FROM prediction_evidence WHERE prediction_id = :p"),
                    {"p": answer.prediction_id},
                )
            )
        assert carried and not carried & gone
        assert not set(live.view(sessions()).pair_ids.tolist()) & gone

    # Pairs added after the build: in the default model at once, in the named one once built.
    ingest_shard(
        sessions, blobs, encoders, tmp_path / "c", shared_data, licence="kept", n=2, offset=20
    )
    with sessions() as session:
        listed = {m.name: m for m in models.list_models(session, Settings())}
    assert (listed["default"].usable_pairs, listed["narrow"].usable_pairs) == (16, 14)
    assert listed["narrow"].expected_pairs == 16
    with sessions.begin() as session:
        again = models.build(session, name="narrow", actor="steward")
    run_reencode(sessions, blobs, narrow, again.id)
    with sessions() as session:
        embedded = session.execute(
            text("SELECT done, total FROM reencodes WHERE id = :r"), {"r": again.id}
        ).one()
    assert classify_one(sessions, narrow_live, narrow, query, k=4).usable_pairs == 16
    assert tuple(embedded) == (22, 22)  # every ready pair, held or embedded now

    # A worker (it can load every model's encoders) embeds new pairs for the named models too:
    # they join both models with the batch, no build needed.
    ingest_shard(
        sessions,
        blobs,
        encoders,
        tmp_path / "d",
        shared_data,
        licence="kept",
        n=3,
        offset=22,
        encoders_for=lambda image, text_: narrow,
    )
    with sessions() as session:
        listed = {m.name: m for m in models.list_models(session, Settings())}
        wide = session.execute(
            text(
                "SELECT count(*) FROM pair_embeddings e JOIN encoders c ON c.name = e.encoder "
                "WHERE e.encoder = 'narrow-lite0' AND c.dim = 64"
            )
        ).scalar_one()
    assert (listed["default"].usable_pairs, listed["narrow"].usable_pairs) == (19, 19)
    assert wide == 25
    assert classify_one(sessions, narrow_live, narrow, query, k=4).usable_pairs == 19

    # Made the default: one switch, nothing embedded again (every pair holds its embeddings);
    # the default model is now its encoders, k and p, and the old encoders are refused.
    with sessions.begin() as session:
        switch = models.make_default(session, name="narrow", actor="steward")
    assert run_reencode(sessions, blobs, narrow, switch.id)[-1] == "switched"
    with sessions() as session:
        now = models.resolve(session, Settings(), None)
    assert (now.image_encoder, now.k, now.p) == ("narrow-lite0", 4, 8.0)
    switched = classify_one(sessions, default_live, narrow, query, k=now.k)
    assert (switched.model, switched.usable_pairs) == ("default", 19)
    assert default_live.view(sessions()).anchors.image.shape[1] == 64
    with pytest.raises(Conflict, match="narrow-lite0"):
        classify_one(sessions, default_live, encoders, query, k=5)
    # A worker still configured with the old encoders follows the switch, with no restart:
    # its batches embed by the default model's encoders now, and the pairs join it.
    ingest_shard(
        sessions,
        blobs,
        encoders,
        tmp_path / "e",
        shared_data,
        n=2,
        offset=25,
        encoders_for=lambda image, text_: narrow,
    )
    assert classify_one(sessions, default_live, narrow, query, k=4).usable_pairs == 21
    with sessions() as session:
        wide = session.execute(
            text("SELECT count(*) FROM pair_embeddings WHERE encoder = 'narrow-lite0'")
        ).scalar_one()
    assert wide == 27  # the 2 new pairs are embedded by the new default's image encoder
    # A caller that cannot load them (no `encoders_for`) is refused, naming both.
    with pytest.raises(ConfigError, match="narrow-lite0"):
        ingest_shard(sessions, blobs, encoders, tmp_path / "f", shared_data, n=1, offset=27)

    # A model's definition never changes (a prediction's model name keeps its meaning).
    with pytest.raises(IntegrityError, match="never changes"), sessions.begin() as session:
        session.execute(text("UPDATE models SET k = 9 WHERE name = 'narrow'"))
