"""The batched-job machine (services.batches): every declared job kind runs its queries on the
real schema, has a worker task, and is what recovery walks; a kind's batches are pending until
done, and stalled only once sent too long ago (or never sent)."""

from datetime import timedelta
from pathlib import Path

from sqlalchemy import text

from asifdb.context import Platform
from asifdb.services import batches, ingestion, licences, reencode
from asifdb.settings import Settings
from tests.samples import TEST_ROOTS, tiny_shard
from workers import tasks


def test_every_kind_is_declared_once_and_has_a_task() -> None:
    assert set(batches.KINDS) == {"ingest", "reencode"} == set(tasks.TASKS)
    assert batches.KINDS["ingest"] is ingestion.BATCHES
    assert batches.KINDS["reencode"] is reencode.BATCHES


def test_each_kind_finds_pending_and_stalled_batches(
    db_url: str, tmp_path: Path, shared_data: Path
) -> None:
    platform = Platform(Settings(database_url=db_url, data_dir=tmp_path / "data"))
    with platform.sessions.begin() as session:
        for kind in batches.KINDS.values():  # every kind's SQL runs on the real tables
            assert kind.pending(session, -1) == []
            kind.stalled(session, timedelta(0))
        licences.create(session, name="cc", actor="test")
        job = ingestion.start_job(
            session,
            source=str(tiny_shard(shared_data, tmp_path / "wds", 6)),
            roots=list(TEST_ROOTS),
            license_name="cc",
            actor="test",
            batch_size=2,
        )
    kind = ingestion.BATCHES
    with platform.sessions.begin() as session:
        pending = kind.pending(session, job.id)
        assert len(pending) == 3
        # Never sent: stalled at once. Sent just now: not stalled for an hour.
        assert set(pending) <= set(kind.stalled(session, timedelta(hours=1)))
        kind.mark_dispatched(session, pending[:2])
        assert set(kind.stalled(session, timedelta(hours=1))) & set(pending) == {pending[2]}
    with platform.sessions.begin() as session:  # a later transaction: sent before its now()
        assert set(pending) <= set(kind.stalled(session, timedelta(0)))
        session.execute(text("UPDATE job_batches SET done = true WHERE id = :b"), {"b": pending[0]})
        assert kind.pending(session, job.id) == pending[1:]
        assert pending[0] not in kind.stalled(session, timedelta(0))
    platform.close()
