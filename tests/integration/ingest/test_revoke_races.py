"""Revocation wins against in-flight ingestion: from the commit of a revoke on, no pair of the
licence becomes usable, whether its batch was queued, encoding or about to commit (real
database, the worker's batch code in threads, real encoders)."""

import threading
from pathlib import Path

from sqlalchemy import text

from asifdb.context import Platform
from asifdb.services import ingestion, licences, model
from asifdb.services.model import Encoders
from asifdb.settings import Settings
from tests.samples import TEST_ROOTS, tiny_shard

_OPEN_WHILE_REVOKED = text(
    "SELECT count(*) FROM pair_usability u JOIN pairs p ON p.id = u.pair_id "
    "JOIN licenses l ON l.id = p.license_id "
    "WHERE u.to_version IS NULL AND l.status <> 'active'"
)


def _platform(db_url: str, tmp_path: Path, encoders: Encoders) -> Platform:
    platform = Platform(Settings(database_url=db_url, data_dir=tmp_path / "data"))
    platform.__dict__["encoders"] = encoders
    # Adopt the encoders up front: a model's very first batch holds the model row while it
    # adopts them, which would make the in-thread revoke below wait on its own batch.
    with platform.sessions.begin() as session:
        model.ensure_state(
            session, image_encoder=encoders.image.name, text_encoder=encoders.text.name
        )
    return platform


def _start(platform: Platform, source: Path, batch_size: int) -> list[int]:
    with platform.sessions.begin() as session:
        licences.create(session, name="racy", actor="test")
        job = ingestion.start_job(
            session,
            roots=TEST_ROOTS,
            source=str(source),
            license_name="racy",
            actor="test",
            batch_size=batch_size,
        )
        return ingestion.BATCHES.pending(session, job.id)


def _process(platform: Platform, batch: int, on_encoded=None) -> None:  # noqa: ANN001
    ingestion.process_batch(
        sessions=platform.sessions,
        blobs=platform.blobs,
        encoders=platform.encoders,
        batch_id=batch,
        on_encoded=on_encoded,
    )


def test_a_revoke_committed_while_a_batch_encodes_keeps_its_pairs_out(
    db_url: str, tmp_path: Path, encoders: Encoders, shared_data: Path
) -> None:
    platform = _platform(db_url, tmp_path, encoders)
    (batch,) = _start(platform, tiny_shard(shared_data, tmp_path / "wds", 8), batch_size=8)

    def revoke_now() -> None:  # runs after encoding, before the pairs go in
        with platform.sessions.begin() as session:
            licences.revoke(session, licence="racy", reason="withdrawn", actor="steward")

    _process(platform, batch, on_encoded=revoke_now)
    with platform.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pairs")).scalar_one() == 8
        assert conn.execute(text("SELECT count(*) FROM usable_pairs")).scalar_one() == 0
        assert conn.execute(_OPEN_WHILE_REVOKED).scalar_one() == 0
    # Restoring brings them in, once each.
    with platform.sessions.begin() as session:
        licences.restore(session, licence="racy", actor="steward")
    with platform.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM usable_pairs")).scalar_one() == 8
        opened = "SELECT count(*) FROM pair_usability WHERE to_version IS NULL"
        assert conn.execute(text(opened)).scalar_one() == 8
    platform.close()


def test_revoking_and_restoring_throughout_a_job_leaves_usability_consistent(
    db_url: str, tmp_path: Path, encoders: Encoders, shared_data: Path
) -> None:
    platform = _platform(db_url, tmp_path, encoders)
    batches = _start(platform, tiny_shard(shared_data, tmp_path / "wds", 48), batch_size=4)
    done = threading.Event()

    def ingest() -> None:
        try:
            for batch in batches:
                _process(platform, batch)
        finally:
            done.set()

    worker = threading.Thread(target=ingest)
    worker.start()
    toggles = 0
    while not done.is_set():
        with platform.sessions.begin() as session:
            if toggles % 2 == 0:
                licences.revoke(session, licence="racy", reason="paused", actor="steward")
            else:
                licences.restore(session, licence="racy", actor="steward")
        toggles += 1
        with platform.engine.connect() as conn:
            assert conn.execute(_OPEN_WHILE_REVOKED).scalar_one() == 0
    worker.join()
    assert toggles >= 4, "the job finished before the race could be run"
    with platform.sessions.begin() as session:
        if licences.get_by_name(session, name="racy").status == "active":
            licences.revoke(session, licence="racy", reason="final", actor="steward")
    with platform.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pairs")).scalar_one() == 48
        assert conn.execute(_OPEN_WHILE_REVOKED).scalar_one() == 0
        # Every pair's intervals never overlap: at most one open at a time, none left open.
        overlapping = conn.execute(
            text(
                "SELECT count(*) FROM pair_usability a JOIN pair_usability b "
                "ON a.pair_id = b.pair_id AND a.id < b.id "
                "AND a.from_version < coalesce(b.to_version, 2147483647) "
                "AND b.from_version < coalesce(a.to_version, 2147483647)"
            )
        ).scalar_one()
        assert overlapping == 0
    with platform.sessions.begin() as session:
        licences.restore(session, licence="racy", actor="steward")
    with platform.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM usable_pairs")).scalar_one() == 48
    platform.close()
