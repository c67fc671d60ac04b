"""Celery tasks. Each takes ids, calls one service, and is safe to run twice."""

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from celery import signals
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from asifdb.errors import AsifdbError
from asifdb.services import batches, ingestion, reencode
from workers import runtime
from workers.app import app

log = logging.getLogger(__name__)


def _run(task, kind: batches.BatchKind, batch_id: int, process: Callable[[], Any]) -> dict:  # noqa: ANN001
    """One batch of any kind, safe to run twice: the kind's work, then the same endings for
    every kind. A failure on the batch's data to be tried again is retried after the back-off
    the database counted (BatchFailed); an AsifdbError (a source gone, an encoder that cannot
    load) fails the batch's job for good, saying why; a lost connection is retried by Celery."""
    try:
        outcome = process()
    except batches.BatchFailed as failed:
        if failed.retry_in is None:  # recorded: the batch failed for good, its job told why
            return {"batch_id": batch_id, "status": "failed", "error": failed.error}
        raise task.retry(countdown=failed.retry_in, max_retries=None) from failed
    except AsifdbError as exc:
        with runtime.platform().sessions.begin() as session:
            kind.fail(session, batch_id=batch_id, error=str(exc))
        log.error("%s batch %s failed for good: %s", kind.name, batch_id, exc)
        return {"batch_id": batch_id, "status": "failed", "error": str(exc)}
    return outcome.__dict__


_RETRIED = {
    "bind": True,
    "autoretry_for": (OperationalError, ConnectionError, TimeoutError),
    "retry_backoff": True,
    "max_retries": 8,
}


@app.task(name="asifdb.ingest_batch", **_RETRIED)
def ingest_batch(self, batch_id: int) -> dict:  # noqa: ANN001
    """Encode and store one batch of a job (idempotent: a done batch is skipped)."""
    platform = runtime.platform()
    return _run(
        self,
        ingestion.BATCHES,
        batch_id,
        lambda: ingestion.process_batch(
            sessions=platform.sessions,
            blobs=platform.blobs,
            encoders=platform.encoders,
            encoders_for=runtime.encoders_for,
            batch_id=batch_id,
            limits=ingestion.read_limits(platform.settings),
            retries=ingestion.Retries.of(platform.settings),
        ),
    )


@app.task(name="asifdb.reencode_batch", **_RETRIED)
def reencode_batch(self, batch_id: int) -> dict:  # noqa: ANN001
    """Re-embed one batch of a re-encode (idempotent); the last one switches the model."""
    platform = runtime.platform()
    return _run(
        self,
        reencode.BATCHES,
        batch_id,
        lambda: reencode.process_batch(
            sessions=platform.sessions,
            blobs=platform.blobs,
            encoders_for=runtime.encoders_for,
            batch_id=batch_id,
        ),
    )


# The task that runs a batch of each kind (services.batches.KINDS): a kind without one fails
# here, at import, not when its first batch is sent.
TASKS = {ingestion.BATCHES.name: ingest_batch, reencode.BATCHES.name: reencode_batch}
if set(TASKS) != set(batches.KINDS):
    raise RuntimeError(f"job kinds without a task: {sorted(set(batches.KINDS) - set(TASKS))}")


def dispatch(
    kind: batches.BatchKind, batch_ids: Sequence[int], sessions: sessionmaker[Session]
) -> None:
    """Send batches to the workers and note when (what recovery looks at), in the caller's
    database (`sessions`: the API's, CLI's, UI's or this worker's platform)."""
    if not batch_ids:
        return
    with sessions.begin() as session:
        kind.mark_dispatched(session, batch_ids)
    for batch_id in batch_ids:
        TASKS[kind.name].delay(batch_id)


class CeleryDispatcher:
    """The platform's port to the workers (`services.submit.Dispatcher`)."""

    def send(
        self, kind: batches.BatchKind, batch_ids: Sequence[int], sessions: sessionmaker[Session]
    ) -> None:
        dispatch(kind, batch_ids, sessions)


def recover(older_than: timedelta) -> list[int]:
    """Send again every batch, of every job kind, that a lost message left undone."""
    sessions = runtime.platform().sessions
    resent: list[int] = []
    for kind in batches.KINDS.values():
        with sessions.begin() as session:
            stalled = kind.stalled(session, older_than)
        dispatch(kind, stalled, sessions)
        resent += stalled
    if resent:
        log.warning("re-sent %d batches whose messages were lost", len(resent))
    return resent


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
