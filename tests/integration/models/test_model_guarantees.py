"""Named models under attack (a hostile review of issue 21's changes): each test asserts a
promise docs/operations.md makes, in the way the review found it broken: a process that follows
a switch, the approximate path of a named model, the app role redefining a model, a deleted
pair only a named model held, one (model, version) meaning two sets of pairs."""

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from asifdb.anchors import ann_index
from asifdb.anchors.live import LiveModel
from asifdb.blobs import BlobStore
from asifdb.db.session import make_engine
from asifdb.errors import Conflict
from asifdb.services import models, reencode
from asifdb.services.model import Encoders
from tests.conftest import setup_url
from tests.integration.models.building import (
    Rolled,
    add_model,
    classify_one,
    first_image,
    ingest_shard,
    run_reencode,
)


def test_a_process_that_follows_a_switch_of_image_encoder_answers_as_a_fresh_one(
    sessions: sessionmaker[Session], encoders: Encoders, shared_data: Path, tmp_path: Path
) -> None:
    """docs/operations.md: 'Queries follow the switch at once, no restart'. The API process's
    LiveModel (Platform.live) outlives the switch; its exact indexes must not."""
    blobs = BlobStore(tmp_path / "blobs")
    ingest_shard(sessions, blobs, encoders, tmp_path / "a", shared_data, n=12, offset=0)
    query = first_image(sessions, blobs)
    running = LiveModel()  # the API's Platform.live: one per process, for the default model
    before = classify_one(sessions, running, encoders, query)

    rolled = Encoders(image=Rolled(encoders.image), text=encoders.text)
    with sessions.begin() as session:
        job = reencode.start(
            session, image_encoder=rolled.image.name, text_encoder=rolled.text.name, actor="op"
        )
    assert run_reencode(sessions, blobs, rolled, job.id)[-1] == "switched"

    fresh = classify_one(sessions, LiveModel(), rolled, query)  # a process started after it
    after = classify_one(sessions, running, rolled, query)  # the process that was running
    # Every cosine of the rolled model equals the original's: the fresh process answers as before.
    assert (fresh.label, round(fresh.score, 5)) == (before.label, round(before.score, 5))
    # The running one must too; with the stale image index it scores the rolled query against
    # the old encoder's rows.
    assert [(e.pair_id, round(e.image_similarity, 4)) for e in after.evidence] == [
        (e.pair_id, round(e.image_similarity, 4)) for e in fresh.evidence
    ]
    assert round(after.score, 5) == round(fresh.score, 5)


def _build_hnsw(db_url: str) -> None:
    setup = make_engine(setup_url(db_url))
    try:
        assert ann_index.build(setup, ann_index.BuildParams(workers=0)).state == "ready"
    finally:
        setup.dispose()


def test_the_approximate_path_is_the_default_models_alone(
    sessions: sessionmaker[Session],
    encoders: Encoders,
    shared_data: Path,
    tmp_path: Path,
    db_url: str,
) -> None:
    """The HNSW index holds the default's embeddings of every collection: a named model (of
    other encoders, or of one collection) asked for `ann` is refused, and `auto` is exact for
    it, so it answers from its own embeddings and collection only."""
    blobs = BlobStore(tmp_path / "blobs")
    ingest_shard(sessions, blobs, encoders, tmp_path / "a", shared_data, n=8, offset=0)
    ingest_shard(
        sessions, blobs, encoders, tmp_path / "b", shared_data, n=8, offset=8, collection="sub"
    )
    query = first_image(sessions, blobs)  # pair 1: collection default, not sub
    rolled = Encoders(image=Rolled(encoders.image), text=encoders.text)
    add_model(sessions, blobs, "rolled", rolled)
    add_model(sessions, blobs, "sub", encoders, collection="sub")
    _build_hnsw(db_url)
    for name, enc in (("rolled", rolled), ("sub", encoders)):
        live = LiveModel(model=name)
        for approximate in ("ann", "ivf"):
            with pytest.raises(Conflict, match="covers the default model only"):
                classify_one(sessions, live, enc, query, method=approximate)
        auto = classify_one(sessions, live, enc, query, method="auto")
        assert (auto.method, auto.model) == ("exact", name)
    assert (auto.usable_pairs, {e.pair_id for e in auto.evidence} <= set(range(9, 17))) == (
        8,
        True,
    )


def test_the_application_role_cannot_give_a_model_name_another_definition(
    sessions: sessionmaker[Session],
) -> None:
    """'A model's definition never changes (a database trigger refuses it), so a prediction's
    model name keeps its meaning' (operations.md): the app role (API, UI, workers) may neither
    change a model nor delete it to make another under its name."""
    with sessions.begin() as session:
        session.execute(
            text(
                "INSERT INTO models (name, image_encoder, text_encoder, k, p, status) "
                "VALUES ('m', 'enc-a', 'enc-t', 5, 8, 'ready')"
            )
        )
    with pytest.raises(IntegrityError, match="never deleted"), sessions.begin() as session:
        session.execute(text("DELETE FROM models WHERE name = 'm'"))  # as asifdb_app
    with pytest.raises(IntegrityError, match="never changes"), sessions.begin() as session:
        session.execute(text("UPDATE models SET image_encoder = 'enc-b' WHERE name = 'm'"))
    with sessions() as session:
        now = session.execute(text("SELECT image_encoder, k FROM models WHERE name = 'm'")).one()
    assert tuple(now) == ("enc-a", 5)


def test_a_deleted_pair_leaves_a_named_model_that_held_it_when_the_default_did_not(
    sessions: sessionmaker[Session], encoders: Encoders, shared_data: Path, tmp_path: Path
) -> None:
    """'Revocation, deletion and erasure hold for every model at once' (operations.md). A pair
    whose blob was missing at a switch of the default leaves the default but keeps its place in
    a named model built before (model_usable_pairs needs only that model's embeddings). Its
    deletion then changes no default usability (pairs.delete: leaving=[] when not in
    usable_pairs), so no version is made and the named model's sync returns its old anchors."""
    from asifdb.services import pairs

    blobs = BlobStore(tmp_path / "blobs")
    ingest_shard(sessions, blobs, encoders, tmp_path / "a", shared_data, n=6, offset=0)
    rolled = Encoders(image=Rolled(encoders.image), text=encoders.text)
    add_model(sessions, blobs, "rolled", rolled)
    with sessions() as session:
        lost, sha = session.execute(
            text("SELECT id, image_sha256 FROM pairs ORDER BY id LIMIT 1")
        ).one()
    assert blobs.delete(sha)  # the blob is lost (a disk fault, a restore from backup, ...)
    other = Encoders(image=Rolled(encoders.image, "other-lite0"), text=encoders.text)
    with sessions.begin() as session:
        job = reencode.start(
            session, image_encoder=other.image.name, text_encoder=other.text.name, actor="op"
        )
    assert run_reencode(sessions, blobs, other, job.id)[-1] == "switched"

    live = LiveModel(model="rolled")  # an API process serving the named model
    with sessions.begin() as session:
        assert lost in live.view(session).pair_ids.tolist()  # rightly: it has its embeddings

    with sessions.begin() as session:
        pairs.delete(session, pair_id=lost, actor="steward", reason="takedown")
    with sessions.begin() as session:
        in_db = set(
            session.scalars(text("SELECT id FROM model_usable_pairs WHERE model = 'rolled'"))
        )
        served = set(live.view(session).pair_ids.tolist())
    assert lost not in in_db
    assert lost not in served, "the deleted pair still answers for model 'rolled'"


def test_one_version_of_a_named_model_means_one_set_of_pairs(
    sessions: sessionmaker[Session], encoders: Encoders, shared_data: Path, tmp_path: Path
) -> None:
    """Predictions record (model, model_version) to say which anchors answered. A build of a
    ready model commits each batch's embeddings into model_usable_pairs at once, without a
    version (reencode._join_if_current only makes one for the default's encoders): two
    processes then answer for the same (model, version) from different pairs."""
    blobs = BlobStore(tmp_path / "blobs")
    ingest_shard(sessions, blobs, encoders, tmp_path / "a", shared_data, n=4, offset=0)
    rolled = Encoders(image=Rolled(encoders.image), text=encoders.text)
    add_model(sessions, blobs, "rolled", rolled)
    # Pairs ingested by a caller without encoders_for (the CLI's, a test's): they miss the model.
    ingest_shard(sessions, blobs, encoders, tmp_path / "b", shared_data, n=4, offset=4)
    old = LiveModel(model="rolled")
    with sessions.begin() as session:
        before = old.view(session)
        job = models.build(session, name="rolled", actor="steward", batch_size=4)
        first = reencode.BATCHES.pending(session, job.id)[1]  # the batch of the 4 new pairs
    reencode.process_batch(
        sessions=sessions, blobs=blobs, encoders_for=lambda i, t: rolled, batch_id=first
    )
    with sessions.begin() as session:
        a, b = old.view(session), LiveModel(model="rolled").view(session)
    # The batch was a version: the old process re-syncs to it and both see the same 8 pairs.
    assert a.version == b.version > before.version
    assert a.pair_ids.tolist() == b.pair_ids.tolist() and len(a.pair_ids) == 8
