"""Celery tasks. Each takes ids, calls one service, and is safe to run twice."""

import logging
import threading
from collections.abc import Sequence
from datetime import timedelta

from celery import signals
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from asifdb.errors import AsifdbError
from asifdb.services import ingestion, reencode
from workers import runtime
from workers.app import app

log = logging.getLogger(__name__)


@app.task(
    name="asifdb.ingest_batch",
    bind=True,
    autoretry_for=(OperationalError, ConnectionError, TimeoutError),
    retry_backoff=True,
    max_retries=8,
)
def ingest_batch(self, batch_id: int) -> dict:  # noqa: ANN001
    """Encode and store one batch of a job (idempotent: a done batch is skipped)."""
    platform = runtime.platform()
    try:
        outcome = ingestion.process_batch(
            sessions=platform.sessions,
            blobs=platform.blobs,
            encoders=platform.encoders,
            batch_id=batch_id,
            limits=ingestion.read_limits(platform.settings),
            retries=ingestion.Retries.of(platform.settings),
        )
    except ingestion.BatchFailed as failed:
        if failed.retry_in is None:  # recorded: the batch failed for good, its job told why
            return {"batch_id": batch_id, "status": "failed", "error": failed.error}
        # The database counts the tries (INGEST_MAX_ATTEMPTS), not Celery.
        raise self.retry(countdown=failed.retry_in, max_retries=None) from failed
    except AsifdbError as exc:
        with platform.sessions.begin() as session:
            ingestion.fail_job_of_batch(session, batch_id=batch_id, error=str(exc))
        log.error("batch %s failed for good: %s", batch_id, exc)
        return {"batch_id": batch_id, "status": "failed", "error": str(exc)}
    return outcome.__dict__


@app.task(
    name="asifdb.reencode_batch",
    bind=True,
    autoretry_for=(OperationalError, ConnectionError, TimeoutError),
    retry_backoff=True,
    max_retries=8,
)
def reencode_batch(self, batch_id: int) -> dict:  # noqa: ANN001
    """Re-embed one batch of a re-encode (idempotent); the last one switches the model."""
    platform = runtime.platform()
    try:
        outcome = reencode.process_batch(
            sessions=platform.sessions,
            blobs=platform.blobs,
            encoders_for=runtime.encoders_for,
            batch_id=batch_id,
        )
    except AsifdbError as exc:
        with platform.sessions.begin() as session:
            reencode.fail(session, batch_id=batch_id, error=str(exc))
        log.error("re-encode batch %s failed for good: %s", batch_id, exc)
        return {"batch_id": batch_id, "status": "failed", "error": str(exc)}
    return outcome.__dict__


def dispatch_reencode(batch_ids: list[int], sessions: sessionmaker[Session]) -> None:
    """Send re-encode batches to the workers and note when, in the caller's database."""
    if not batch_ids:
        return
    with sessions.begin() as session:
        reencode.mark_dispatched(session, batch_ids=batch_ids)
    for batch_id in batch_ids:
        reencode_batch.delay(batch_id)


def dispatch(batch_ids: list[int], sessions: sessionmaker[Session]) -> None:
    """Send batches to the workers and note when (what recovery looks at), in the caller's
    database (`sessions`: the API's, CLI's, UI's or this worker's platform)."""
    if not batch_ids:
        return
    with sessions.begin() as session:
        ingestion.mark_dispatched(session, batch_ids=batch_ids)
    for batch_id in batch_ids:
        ingest_batch.delay(batch_id)


class CeleryDispatcher:
    """The platform's port to the workers (`services.submit.Dispatcher`)."""

    def ingest(self, batch_ids: Sequence[int], sessions: sessionmaker[Session]) -> None:
        dispatch(list(batch_ids), sessions)

    def reencode(self, batch_ids: Sequence[int], sessions: sessionmaker[Session]) -> None:
        dispatch_reencode(list(batch_ids), sessions)


def recover(older_than: timedelta) -> list[int]:
    """Send again every batch a lost message left undone."""
    with runtime.platform().sessions.begin() as session:
        stalled = ingestion.stalled_batches(session, older_than=older_than)
    dispatch(stalled, runtime.platform().sessions)
    with runtime.platform().sessions.begin() as session:
        stalled_reencode = reencode.stalled_batches(session, older_than=older_than)
    dispatch_reencode(stalled_reencode, runtime.platform().sessions)
    if stalled or stalled_reencode:
        log.warning(
            "re-sent %d batches whose messages were lost", len(stalled) + len(stalled_reencode)
        )
    return stalled + stalled_reencode


def _recovery_loop(stop: threading.Event) -> None:
    # At start every undone batch is suspect (this worker may be replacing a dead one);
    # afterwards only those that waited longer than a batch ever should (a broker restart).
    settings = runtime.platform().settings
    older_than = timedelta(0)
    while not stop.is_set():
        try:
            recover(older_than)
        except OperationalError as exc:
            log.warning("recovery skipped, database unreachable: %s", exc)
        older_than = timedelta(seconds=settings.recovery_stale_after_s)
        stop.wait(settings.recovery_interval_s)


_stop_recovery = threading.Event()


@signals.worker_ready.connect
def _start_recovery(**_: object) -> None:
    threading.Thread(target=_recovery_loop, args=(_stop_recovery,), daemon=True).start()


@signals.worker_shutdown.connect
def _stop_recovery_loop(**_: object) -> None:
    _stop_recovery.set()
