"""The batched-job machine every job kind shares (ingestion, re-encode, any later kind).

A job is a row; its work is cut into batch rows, each done once in its own transaction. The
machine owns what every kind does alike: which batches of a job are still to do, noting when
they were handed to the workers, finding the ones whose message was lost (undone, unlocked,
sent too long ago), and the one way a batch ends for good (`fail`: its job told why) or is
tried again (`BatchFailed` with `retry_in`: the database counts the tries, not the broker).
A kind declares its tables and its `fail`, and registers itself in KINDS, which the workers'
dispatch and recovery go through: a new kind is recovered the day it is declared.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session


class BatchFailed(Exception):
    """A batch failed on its data; `retry_in` seconds until its next try, None if given up."""

    def __init__(self, batch_id: int, attempts: int, error: str, retry_in: float | None) -> None:
        ending = f"retry in {retry_in:g} s" if retry_in is not None else "given up"
        super().__init__(f"batch {batch_id}, try {attempts}: {error} ({ending})")
        self.batch_id, self.attempts = batch_id, attempts
        self.error, self.retry_in = error, retry_in


@dataclass(frozen=True)
class BatchKind:
    """A job kind as the machine sees it: its tables (constants of the code, never input) and
    how a batch that cannot succeed fails its job (`fail(session, batch_id=, error=)`)."""

    name: str
    batches: str  # the batch table: id, <job_key>, done, dispatched_at
    jobs: str  # the job table: id, status ('queued' and 'running' are unfinished)
    job_key: str  # the batch table's column naming its job
    order: str  # the batch column batches are sent in
    fail: Callable[..., None]

    def pending(self, session: Session, job_id: int) -> list[int]:
        """The job's batches not done yet, in order."""
        rows = session.execute(
            text(
                f"SELECT id FROM {self.batches} WHERE {self.job_key} = :j AND NOT done "
                f"ORDER BY {self.order}, id"
            ),
            {"j": job_id},
        )
        return list(rows.scalars())

    def mark_dispatched(self, session: Session, batch_ids: Sequence[int]) -> None:
        """Note when the batches were handed to the workers (what `stalled` looks at)."""
        session.execute(
            text(f"UPDATE {self.batches} SET dispatched_at = now() WHERE id = ANY(:ids)"),
            {"ids": list(batch_ids)},
        )

    def stalled(self, session: Session, older_than: timedelta) -> list[int]:
        """Batches of unfinished jobs, not done, not being worked on (unlocked), last sent
        longer ago than `older_than`: their message was lost (a broker restart, a worker
        killed before it acknowledged)."""
        rows = session.execute(
            text(
                f"SELECT b.id FROM {self.batches} b JOIN {self.jobs} j ON j.id = b.{self.job_key} "
                "WHERE NOT b.done AND j.status IN ('queued', 'running') "
                "AND (b.dispatched_at IS NULL OR b.dispatched_at < now() - :age) "
                "ORDER BY b.id FOR UPDATE OF b SKIP LOCKED"
            ),
            {"age": older_than},
        )
        return list(rows.scalars())


KINDS: dict[str, BatchKind] = {}


def register(kind: BatchKind) -> BatchKind:
    """Declare a job kind: the workers dispatch and recover it from now on."""
    if KINDS.get(kind.name, kind) != kind:
        raise ValueError(f"two job kinds are named {kind.name!r}")
    KINDS[kind.name] = kind
    return kind
