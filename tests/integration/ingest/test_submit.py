"""Submitting a job when the broker is down: the job is saved with every batch, the answer says
the workers do not have them yet, and they are exactly what recovery sends when a worker
starts. The broker failure is real: a Redis connection to a port where nothing listens."""

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from kombu import Connection
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from asifdb.context import Platform
from asifdb.services import ingestion, licences, submit
from asifdb.services.batches import BatchKind
from asifdb.settings import Settings
from tests.samples import TEST_ROOTS, tiny_shard


class DownBroker:
    """The workers' dispatcher (note the sending, then publish) with a broker that cannot be
    reached: nothing listens on port 1."""

    def __init__(self) -> None:
        self.tried: list[int] = []

    def send(
        self, kind: BatchKind, batch_ids: Sequence[int], sessions: sessionmaker[Session]
    ) -> None:
        self.tried.extend(batch_ids)
        with sessions.begin() as session:
            kind.mark_dispatched(session, batch_ids)
        with Connection("redis://127.0.0.1:1/0", connect_timeout=1) as conn:
            conn.ensure_connection(max_retries=1)


def test_a_job_submitted_while_the_broker_is_down_is_kept_for_recovery(
    db_url: str, tmp_path: Path, shared_data: Path
) -> None:
    platform = Platform(Settings(database_url=db_url, data_dir=tmp_path / "data"))
    down = DownBroker()
    platform.__dict__["dispatcher"] = down
    with platform.sessions.begin() as session:
        licences.create(session, name="cc", actor="test")

    done = submit.ingestion_job(
        platform,
        source=tiny_shard(shared_data, tmp_path / "wds", 6),
        roots=TEST_ROOTS,
        license_name="cc",
        actor="annotator",
        batch_size=2,
    )

    accepted = done.accepted()
    assert accepted.queued is False and "a worker sends them when it starts" in str(accepted.note)
    assert accepted.total == 6 and done.batches == 3 and len(down.tried) == 3
    with platform.sessions() as session:
        status = session.execute(
            text("SELECT status FROM jobs WHERE id = :j"), {"j": accepted.job_id}
        ).scalar_one()
        assert status == "queued"  # saved, nothing lost, nothing done yet
        # What a worker's recovery sends at start: every one of them.
        assert sorted(ingestion.BATCHES.stalled(session, timedelta(0))) == sorted(down.tried)
    platform.close()
