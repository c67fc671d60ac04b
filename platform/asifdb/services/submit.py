"""Sending work to the workers, written once for every adapter: create an ingestion job (or a
re-encode) with its batches in one transaction, then hand the batches to the platform's
dispatcher. The job is the source of truth, not the message: if the broker does not take the
batches, the job stays saved with every batch, the answer says so (`queued` false, a `note`),
and a worker sends them when it starts (`workers.tasks.recover` takes every undone batch then).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kombu.exceptions import OperationalError as BrokerDown
from sqlalchemy.exc import OperationalError as DatabaseBrokerDown
from sqlalchemy.orm import Session, sessionmaker

from asifdb.schemas.pairs import JobAccepted
from asifdb.services import ingestion, models, reencode
from asifdb.services.batches import BatchKind

if TYPE_CHECKING:
    from asifdb.context import Platform


class Dispatcher(Protocol):
    """The port to the workers (the platform holds one; `workers.tasks` implements it): note
    when the batches of a job of `kind` were sent (in `sessions`' database), then send them."""

    def send(
        self, kind: BatchKind, batch_ids: Sequence[int], sessions: sessionmaker[Session]
    ) -> None: ...


@dataclass(frozen=True)
class Submitted:
    job: Any  # the Job or Reencode row, as committed
    batches: int
    queued: bool
    note: str | None

    def accepted(self) -> JobAccepted:
        return JobAccepted(
            job_id=self.job.id,
            total=self.job.total,
            status=self.job.status,
            queued=self.queued,
            note=self.note,
        )


def ingestion_job(
    platform: "Platform",
    *,
    source: str | Path,
    roots: Sequence[Path],
    license_name: str,
    actor: str,
    **options: Any,
) -> Submitted:
    """An ingestion job of `source` under the licence, its batches sent to the workers."""
    with platform.sessions.begin() as session:
        job = ingestion.start_job(
            session,
            source=str(source),
            roots=list(roots),
            license_name=license_name,
            actor=actor,
            **options,
        )
        batches = ingestion.BATCHES.pending(session, job.id)
    return _send(ingestion.BATCHES, platform, job, batches, what="job")


def reencode_job(
    platform: "Platform", *, image_encoder: str, text_encoder: str, actor: str, batch_size: int
) -> Submitted:
    """A re-encode of every pair by the named encoders, its batches sent to the workers."""
    image_name, text_name = reencode.canonical_names(
        image_encoder=image_encoder, text_encoder=text_encoder
    )
    with platform.sessions.begin() as session:
        job = reencode.start(
            session,
            image_encoder=image_name,
            text_encoder=text_name,
            actor=actor,
            batch_size=batch_size,
        )
        batches = reencode.BATCHES.pending(session, job.id)
    return _send(reencode.BATCHES, platform, job, batches, what="re-encode")


def model_job(
    platform: "Platform",
    *,
    name: str,
    actor: str,
    batch_size: int,
    image_encoder: str | None = None,
    text_encoder: str | None = None,
    k: int | None = None,
    p: float | None = None,
    collection: str | None = None,
    make_default: bool = False,
) -> Submitted:
    """A named model's build: with encoders, a new model (`services.models.add`; k and p
    default to the settings'); without, the catch-up build of an existing one, or with
    `make_default` the job that makes it the default model. Its batches are sent to the
    workers."""
    with platform.sessions.begin() as session:
        if make_default:
            job = models.make_default(session, name=name, actor=actor, batch_size=batch_size)
        elif image_encoder is None or text_encoder is None:
            job = models.build(session, name=name, actor=actor, batch_size=batch_size)
        else:
            image_name, text_name = reencode.canonical_names(
                image_encoder=image_encoder, text_encoder=text_encoder
            )
            job = models.add(
                session,
                name=name,
                image_encoder=image_name,
                text_encoder=text_name,
                k=platform.settings.k if k is None else k,
                p=platform.settings.p if p is None else p,
                collection=collection,
                actor=actor,
                batch_size=batch_size,
            )
        batches = reencode.BATCHES.pending(session, job.id)
    return _send(reencode.BATCHES, platform, job, batches, what=f"model {name}'s build")


def _send(
    kind: BatchKind,
    platform: "Platform",
    job: Any,
    batches: list[int],
    *,
    what: str,
) -> Submitted:
    try:
        platform.dispatcher.send(kind, batches, platform.sessions)
    except (BrokerDown, DatabaseBrokerDown, ConnectionError) as exc:
        note = (
            f"{what} {job.id} is saved, but the broker did not take its batches "
            f"({str(exc).splitlines()[0][:200]}): a worker sends them when it starts"
        )
        return Submitted(job, len(batches), queued=False, note=note)
    return Submitted(job, len(batches), queued=True, note=None)
