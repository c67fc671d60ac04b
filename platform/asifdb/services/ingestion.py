"""Ingestion jobs: split a source into batches, turn each batch into pairs, report progress.

A batch is processed in one transaction under a row lock, and marked done in it: a worker that
dies mid-batch leaves nothing behind, a task delivered twice does nothing twice, and batches a
lost message never reached are found again by `BATCHES.stalled` (services.batches: the
tables, not the broker, are the source of truth).

Failures are told apart (`_transient`): a lost connection or a deadlock is retried (by the
worker) until the database answers, and counts for nothing; a failure on the batch's data is
recorded on the batch (`attempts`, `error`), tried again after a doubling back-off, and after
INGEST_MAX_ATTEMPTS tries the batch ends failed and its job, once no batch is left, ends
`partial` (or `failed`, when no batch went in). An item the database refuses on insert is
rejected on its own (`refused_by_database`); the rest of its batch goes in.
"""

import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from asifdb.blobs import BlobStore, blob_uri
from asifdb.db.models import FINISHED_JOB_STATUSES, Job, JobBatch, JobItem, Pair
from asifdb.errors import AsifdbError, Conflict, NotFound
from asifdb.ingest import (
    Limits,
    RejectCode,
    Rejected,
    ValidItem,
    count_items,
    iter_items,
    open_source,
    validate,
)
from asifdb.schemas.pairs import BatchProblem, Reject
from asifdb.schemas.pairs import Job as JobReport
from asifdb.services import audit, batches, blob_refs, embeddings, licences, model, models
from asifdb.services.batches import BatchFailed
from asifdb.services.model import Encoders, EncodersFor
from asifdb.services.stage_timer import StageTimer
from asifdb.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 256


def read_limits(settings: Settings) -> Limits:
    """What a worker reads of a source's files at most (SOURCE_MAX_IMAGE_BYTES, _TEXT_BYTES)."""
    return Limits(
        max_image_bytes=settings.source_max_image_bytes,
        max_text_bytes=settings.source_max_text_bytes,
    )


def start_job(
    session: Session,
    *,
    source: str,
    roots: Sequence[Path | str],
    license_name: str,
    actor: str,
    collection: str = "default",
    kind: str | None = None,
    template: str | None = None,
    classnames: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Job:
    """Check the source and licence, count the items, and create the job with its batches.

    `source` (and a `classnames` file) must lie under one of `roots` (SOURCE_ROOTS, or the
    uploads folder for an upload): Forbidden otherwise. The job keeps the source relative to
    its root, which reports show, and the root itself, which only workers read."""
    licence = licences.get_by_name(session, name=license_name)
    if licence.status != "active":
        if licence.status == "erased":
            raise Conflict(f"licence {license_name!r} is erased: no pair can be added under it")
        raise Conflict(f"licence {license_name!r} is revoked: restore it before adding pairs")
    opened = open_source(source, roots=roots, kind=kind, template=template, classnames=classnames)
    total = count_items(opened)
    job = Job(
        source=opened.relative,
        source_kind=str(opened.kind),
        options={
            "template": opened.template,
            "classnames": opened.classnames,
            "root": str(opened.root),
        },
        collection=collection,
        license_id=licence.id,
        total=total,
        created_by=actor,
        status="queued" if total else "done",
    )
    session.add(job)
    session.flush()
    session.add_all(
        JobBatch(job_id=job.id, start=start, stop=min(start + batch_size, total))
        for start in range(0, total, batch_size)
    )
    audit.record(
        session,
        actor=actor,
        action="job.create",
        target_type="job",
        target_id=str(job.id),
        details={
            "source": job.source,
            "kind": job.source_kind,
            "total": total,
            "license": license_name,
            "collection": collection,
        },
    )
    return job


@dataclass
class BatchOutcome:
    batch_id: int
    status: str  # "done", "already_done", "busy", "failed" (given up before)
    ready: int = 0
    duplicates: int = 0
    rejected: int = 0


@dataclass(frozen=True)
class Retries:
    """How often a batch failing on its data is tried, and how long it waits between tries."""

    max_attempts: int = 4
    backoff_s: float = 5.0

    @classmethod
    def of(cls, settings: Settings) -> "Retries":
        return cls(settings.ingest_max_attempts, settings.ingest_retry_backoff_s)


def process_batch(
    *,
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    encoders: Encoders,
    batch_id: int,
    limits: Limits | None = None,
    retries: Retries | None = None,
    on_encoded: Callable[[], None] | None = None,
    encoders_for: EncodersFor | None = None,
) -> BatchOutcome:
    """Turn one batch of source items into pairs, all in one transaction. Idempotent.

    The seconds spent per stage (read_validate, encode_image, encode_text, blobs_wait, database) are
    stored on the batch row (`timings`) and logged with the commit's. A failure on the batch's
    data is recorded and raised as BatchFailed; a lost connection is raised as it came (retry
    it); an AsifdbError (the source is gone, the encoders differ) is raised for the job to fail.

    `encoders_for` (the workers'): the new pairs are embedded by every named model's encoders
    too, so they join those models at once; without it a named model takes them at its next
    `asifdb models build` (`models list` shows it behind).
    """
    try:
        for _ in range(_SWITCH_RETRIES):
            try:
                return _process_batch(
                    sessions, blobs, encoders, batch_id, limits, on_encoded, encoders_for
                )
            except _EncodersSwitched as switched:
                log.info("batch %d of job %s: the encoders switched; again", batch_id, switched)
        raise Conflict(
            f"batch {batch_id}: the model's encoders switched {_SWITCH_RETRIES} times during it"
        )
    except AsifdbError:
        raise
    except Exception as exc:
        if _transient(exc):
            raise
        failure = _record_failure(sessions, batch_id, _describe(exc), retries or Retries())
        raise failure from exc


# How many times a batch runs again because the model switched encoders while it ran.
_SWITCH_RETRIES = 3


class _EncodersSwitched(Exception):
    """The default model's encoders changed during the batch: nothing of it was committed."""


def _transient(exc: BaseException) -> bool:
    """A failure of the connection or of concurrency, not of the batch: try again, uncounted."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError | ConnectionError | TimeoutError)


def _describe(exc: BaseException) -> str:
    """What failed, without the data it failed on (a server's DETAIL may quote the values)."""
    orig = getattr(exc, "orig", None)
    diag = getattr(orig, "diag", None)
    if diag is not None and diag.message_primary:
        where = f" (column {diag.column_name})" if diag.column_name else ""
        return f"the database refused it: {diag.message_primary}{where}"[:300]
    first_line = (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first_line}"[:300]


def _record_failure(
    sessions: sessionmaker[Session], batch_id: int, error: str, retries: Retries
) -> BatchFailed:
    with sessions.begin() as session:
        batch = session.execute(
            select(JobBatch).where(JobBatch.id == batch_id).with_for_update()
        ).scalar_one_or_none()
        if batch is None or batch.done or batch.failed:
            return BatchFailed(batch_id, batch.attempts if batch else 0, error, None)
        batch.attempts += 1
        batch.error = error
        retry_in: float | None = retries.backoff_s * 2 ** (batch.attempts - 1)
        if batch.attempts >= retries.max_attempts:
            retry_in = None
            batch.failed = True
            batch.finished_at = func.now()
            session.flush()
            _close_job_if_finished(session, batch.job_id)
        failure = BatchFailed(batch_id, batch.attempts, error, retry_in)
    log.warning("ingestion %s", failure)
    return failure


def _close_job_if_finished(session: Session, job_id: int) -> None:
    """No batch left to try: the job is done, or partial / failed if batches failed for good."""
    left, failed, total, first_error = session.execute(
        select(
            func.count().filter(JobBatch.done.is_(False) & JobBatch.failed.is_(False)),
            func.count().filter(JobBatch.failed),
            func.count(),
            func.min(JobBatch.error).filter(JobBatch.failed),
        ).where(JobBatch.job_id == job_id)
    ).one()
    if left:
        return
    values: dict[str, Any] = {"status": "done", "finished_at": func.now()}
    if failed:
        values["status"] = "failed" if failed == total else "partial"
        values["error"] = (
            f"{failed} of {total} batches failed on every try, their items are not in "
            f"(`asifdb job` lists them); e.g. {first_error}"
        )
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.not_in(FINISHED_JOB_STATUSES))
        .values(**values)
    )


def _process_batch(
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    encoders: Encoders,
    batch_id: int,
    limits: Limits | None,
    on_encoded: Callable[[], None] | None,
    encoders_for: EncodersFor | None = None,
) -> BatchOutcome:
    timer = StageTimer()
    with sessions() as session, session.begin():
        batch = session.execute(
            select(JobBatch).where(JobBatch.id == batch_id).with_for_update(skip_locked=True)
        ).scalar_one_or_none()
        if batch is None:
            exists = session.get(JobBatch, batch_id) is not None
            if not exists:
                raise NotFound(f"no batch {batch_id}")
            return BatchOutcome(batch_id, "busy")
        if batch.done or batch.failed:
            return BatchOutcome(batch_id, "already_done" if batch.done else "failed")
        job = session.get_one(Job, batch.job_id)
        # The default model's encoders now (a worker follows a switch); without
        # `encoders_for`, others than the configured refuse (and fail the job).
        encoders = model.adopt(session, configured=encoders, encoders_for=encoders_for)
        session.execute(
            update(JobBatch).where(JobBatch.id == batch_id).values(attempts=JobBatch.attempts + 1)
        )
        if job.status == "queued":
            job.status = "running"
            job.started_at = func.now()
        outcome = _ingest(
            session,
            job,
            batch,
            blobs,
            encoders,
            limits or Limits(),
            on_encoded,
            timer,
            encoders_for,
        )
        with timer.stage("database"):
            _finish_batch(session, job, batch, outcome)
            batch.timings = timer.seconds()
        committing = time.perf_counter()
    log.info(
        "batch %d of job %d: %d ready, %d duplicates, %d rejected; %s; commit %.2f s",
        batch_id,
        job.id,
        outcome.ready,
        outcome.duplicates,
        outcome.rejected,
        timer.summary(),
        time.perf_counter() - committing,
    )
    return outcome


def _finish_batch(session: Session, job: Job, batch: JobBatch, outcome: BatchOutcome) -> None:
    batch.done = True
    batch.finished_at = func.now()
    session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(
            done=Job.done + outcome.ready,
            duplicates=Job.duplicates + outcome.duplicates,
            rejected=Job.rejected + outcome.rejected,
        )
    )
    session.flush()
    _close_job_if_finished(session, job.id)


def _ingest(
    session: Session,
    job: Job,
    batch: JobBatch,
    blobs: BlobStore,
    encoders: Encoders,
    limits: Limits,
    on_encoded: Callable[[], None] | None,
    timer: StageTimer,
    encoders_for: EncodersFor | None = None,
) -> BatchOutcome:
    # The root checked when the job was made (jobs from before roots: the source's folder).
    root = Path(job.options.get("root") or Path(job.source).parent)
    source = open_source(
        root / job.source,
        roots=[root],
        kind=job.source_kind,
        template=job.options.get("template"),
        classnames=job.options.get("classnames") or None,
    )
    outcome = BatchOutcome(batch.id, "done")
    items: list[JobItem] = []
    fresh: list[tuple[int, ValidItem]] = []
    seen: set[tuple[str, str]] = set()
    with timer.stage("read_validate"):
        for ordinal, raw in enumerate(
            iter_items(source, start=batch.start, stop=batch.stop, limits=limits),
            start=batch.start,
        ):
            result = validate(raw, limits)
            if isinstance(result, Rejected):
                items.append(
                    JobItem(
                        job_id=job.id,
                        ordinal=ordinal,
                        key=raw.key,
                        status="rejected",
                        reason_code=str(result.reason.code),
                        reason=result.reason.message,
                    )
                )
                continue
            identity = (result.sha256, result.caption)
            if identity in seen:
                items.append(
                    _duplicate(
                        job, ordinal, result, "the same image and caption earlier in this source"
                    )
                )
                continue
            seen.add(identity)
            fresh.append((ordinal, result))

    with timer.stage("database"):
        existing = _existing_pairs(session, job.collection, [v for _, v in fresh])
    to_encode = []
    for ordinal, valid in fresh:
        pair_id = existing.get((valid.sha256, valid.caption))
        if pair_id is None:
            to_encode.append((ordinal, valid))
        else:
            items.append(
                _duplicate(
                    job,
                    ordinal,
                    valid,
                    f"already in collection {job.collection!r} as pair {pair_id}",
                    pair_id,
                )
            )

    if to_encode:
        # Blob writes wait on the disk (two fsyncs each): they overlap the encoding, in a thread.
        with ThreadPoolExecutor(max_workers=1) as pool:
            stored = pool.submit(_store_blobs, blobs, [v for _, v in to_encode])
            with timer.stage("encode_image"):
                image_emb = encoders.image.embed_batch([v.for_encoder for _, v in to_encode])
            with timer.stage("encode_text"):
                text_emb = encoders.text.embed_batch([v.caption for _, v in to_encode])
            if on_encoded is not None:
                on_encoded()
            with timer.stage("blobs_wait"):
                stored.result()
        with timer.stage("database"):
            may_use = licences.hold_for_adding(session, licence_id=job.license_id)
            # A pair deleted meanwhile may have taken the same bytes out of the store: with
            # their removal held off until this commits, put back what is missing.
            blob_refs.hold(session, [v.sha256 for _, v in to_encode])
            _store_blobs(blobs, [v for _, v in to_encode if not blobs.path(v.sha256).is_file()])
            staged = embeddings.stage(
                session,
                image_encoder=encoders.image.name,
                image=image_emb,
                text_encoder=encoders.text.name,
                text_=text_emb,
            )
            new_ids, refused = _insert_pairs(session, job, to_encode, staged)
        for (ordinal, valid), pair_id, why in zip(to_encode, new_ids, refused, strict=True):
            if why is not None:
                items.append(
                    JobItem(
                        job_id=job.id,
                        ordinal=ordinal,
                        key=valid.key,
                        status="rejected",
                        reason_code=str(RejectCode.REFUSED_BY_DATABASE),
                        reason=why,
                    )
                )
            elif pair_id is None:  # a concurrent job inserted the same pair first
                items.append(_duplicate(job, ordinal, valid, "added concurrently by another job"))
            else:
                items.append(
                    JobItem(
                        job_id=job.id,
                        ordinal=ordinal,
                        key=valid.key,
                        status="ready",
                        pair_id=pair_id,
                    )
                )
        added = [pid for pid in new_ids if pid is not None]
        if added:
            with timer.stage("database"):
                # Revoked meanwhile (not may_use): the pairs are in, not in the model.
                version = model.change_usable(
                    session,
                    change=f"job {job.id}: +{len(added)} pairs",
                    returning=added if may_use else [],
                    always=True,
                )
                # A re-encode may have switched the encoders since this batch began: the model
                # row is locked now, so this check and the pairs' commit see the same encoders;
                # if they moved, the batch runs again with the new ones (process_batch).
                if not model.still_current(session, encoders):
                    raise _EncodersSwitched(job.id)
            if encoders_for is not None:
                # Under the model row's lock (change_usable took it): a model's build ends
                # under the same lock, so it either is listed here or, ending after this
                # commits, embeds these pairs as its late ones. None is missed.
                with timer.stage("encode_models"):
                    models.embed_new_pairs(
                        session,
                        collection=job.collection,
                        pair_ids=new_ids,
                        images=[v.for_encoder for _, v in to_encode],
                        captions=[v.caption for _, v in to_encode],
                        done={encoders.image.name: image_emb, encoders.text.name: text_emb},
                        encoders_for=encoders_for,
                    )
            audit.record(
                session,
                actor=job.created_by or "unknown",
                action="pairs.add",
                target_type="job",
                target_id=str(job.id),
                model_version=version,
                details={
                    "batch": batch.id,
                    "pairs": len(added),
                    "first_pair": min(added),
                    "last_pair": max(added),
                },
            )

    if items:
        # Core, not the unit of work: flushing 256 ORM objects cost ~0.1 s a batch (profiled).
        session.execute(insert(JobItem.__table__), [_item_row(item) for item in items])
    for item in items:
        if item.status == "ready":
            outcome.ready += 1
        elif item.status == "duplicate":
            outcome.duplicates += 1
        else:
            outcome.rejected += 1
    return outcome


def _store_blobs(blobs: BlobStore, items: Sequence[ValidItem]) -> None:
    for valid in items:
        blobs.put(valid.image_bytes, sha256=valid.sha256)


def _item_row(item: JobItem) -> dict[str, Any]:
    return {column: getattr(item, column) for column in _ITEM_COLUMNS}


_ITEM_COLUMNS = ("job_id", "ordinal", "key", "status", "reason_code", "reason", "pair_id")


def _duplicate(
    job: Job, ordinal: int, valid: ValidItem, reason: str, pair_id: int | None = None
) -> JobItem:
    return JobItem(
        job_id=job.id,
        ordinal=ordinal,
        key=valid.key,
        status="duplicate",
        reason_code="duplicate",
        reason=reason,
        pair_id=pair_id,
    )


def _existing_pairs(
    session: Session, collection: str, items: Sequence[ValidItem]
) -> dict[tuple[str, str], int]:
    if not items:
        return {}
    rows = session.execute(
        select(Pair.image_sha256, Pair.caption, Pair.id).where(
            Pair.collection == collection,
            Pair.image_sha256.in_({v.sha256 for v in items}),
        )
    )
    return {(sha, caption): pid for sha, caption, pid in rows}


def _insert_pairs(
    session: Session,
    job: Job,
    items: Sequence[tuple[int, ValidItem]],
    staged: embeddings.Staged,
) -> tuple[list[int | None], list[str | None]]:
    """Insert the batch's pairs and their embeddings (staged, row i for item i) at once.

    Returns each item's new pair id (None where a concurrent job was first) and why the database
    refused it (None where it did not). If the one statement is refused, each item is tried on
    its own, so one item the database cannot store is rejected and the others go in.
    """
    everything = list(range(len(items)))
    try:
        with session.begin_nested():
            ids = _insert_rows(session, job, items, staged, everything)
        return ids, [None] * len(items)
    except (DataError, IntegrityError):
        pass
    ids: list[int | None] = []
    refused: list[str | None] = []
    for index in everything:
        try:
            with session.begin_nested():
                ids += _insert_rows(session, job, items, staged, [index])
                refused.append(None)
        except (DataError, IntegrityError) as exc:
            ids.append(None)
            refused.append(_describe(exc))
    return ids, refused


def _insert_rows(
    session: Session,
    job: Job,
    items: Sequence[tuple[int, ValidItem]],
    staged: embeddings.Staged,
    rows_wanted: list[int],
) -> list[int | None]:
    """The embeddings travel by binary COPY (`db.bulk`), the rest as one array per column."""
    valid = [items[i][1] for i in rows_wanted]
    rows = session.execute(
        text(_INSERT_PAIRS),
        {
            "ords": rows_wanted,
            "collection": job.collection,
            "license_id": job.license_id,
            "job_id": job.id,
            "added_by": job.created_by,
            "shas": [v.sha256 for v in valid],
            "captions": [v.caption for v in valid],
            "uris": [v.source_uri for v in valid],
            "keys": [v.key for v in valid],
            "metadata": [json.dumps(v.metadata) for v in valid],
            "blobs": [blob_uri(v.sha256) for v in valid],
            "widths": [v.width for v in valid],
            "heights": [v.height for v in valid],
        },
    )
    inserted = {(sha, caption): pid for sha, caption, pid in rows}
    ids = [inserted.get((v.sha256, v.caption)) for v in valid]
    new = [(pid, ord_) for pid, ord_ in zip(ids, rows_wanted, strict=True) if pid is not None]
    embeddings.store(
        session, staged, pair_ids=[pid for pid, _ in new], ords=[ord_ for _, ord_ in new]
    )
    return ids


# Ids are drawn in the batch's order (ORDER BY), as the items came from the source.
_INSERT_PAIRS = """
INSERT INTO pairs (collection, image_sha256, caption, source_uri, source_key, source_metadata,
                   blob_uri, width, height, license_id, job_id, status, added_by)
SELECT :collection, u.sha, u.caption, u.uri, u.key, CAST(u.metadata AS jsonb), u.blob, u.width,
       u.height, :license_id, :job_id, 'ready', :added_by
FROM unnest(CAST(:shas AS text[]), CAST(:captions AS text[]), CAST(:uris AS text[]),
            CAST(:keys AS text[]), CAST(:metadata AS text[]), CAST(:blobs AS text[]),
            CAST(:widths AS int[]), CAST(:heights AS int[]), CAST(:ords AS int[]))
     AS u(sha, caption, uri, key, metadata, blob, width, height, ord)
ORDER BY u.ord
ON CONFLICT (collection, image_sha256, caption) DO NOTHING
RETURNING image_sha256, caption, id
"""


def job_report(session: Session, *, job_id: int, rejects: int = 20) -> JobReport:
    """A job's progress and a sample of its rejected items with their reasons."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    reasons = dict(
        session.execute(
            select(JobItem.reason_code, func.count())
            .where(JobItem.job_id == job_id, JobItem.status == "rejected")
            .group_by(JobItem.reason_code)
        ).all()
    )
    sample = session.execute(
        select(JobItem.key, JobItem.reason_code, JobItem.reason)
        .where(JobItem.job_id == job_id, JobItem.status == "rejected")
        .order_by(JobItem.ordinal)
        .limit(rejects)
    ).all()
    failed = session.execute(
        select(JobBatch.id, JobBatch.start, JobBatch.stop, JobBatch.attempts, JobBatch.error)
        .where(JobBatch.job_id == job_id, JobBatch.failed)
        .order_by(JobBatch.start)
    ).all()
    retrying = session.execute(
        select(JobBatch.id, JobBatch.start, JobBatch.stop, JobBatch.attempts, JobBatch.error)
        .where(
            JobBatch.job_id == job_id,
            JobBatch.done.is_(False),
            JobBatch.failed.is_(False),
            JobBatch.error.is_not(None),
        )
        .order_by(JobBatch.start)
    ).all()
    return JobReport(
        id=job.id,
        status=job.status,
        source=job.source,
        kind=job.source_kind,
        collection=job.collection,
        license_id=job.license_id,
        total=job.total,
        done=job.done,
        duplicates=job.duplicates,
        rejected=job.rejected,
        processed=job.done + job.duplicates + job.rejected,
        reject_reasons=reasons,
        rejects=[Reject(key=k, code=c, reason=r) for k, c, r in sample],
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        error=job.error,
        # Batches given up after INGEST_MAX_ATTEMPTS tries, and those failing but still tried.
        failed_batches=[_batch_row(row) for row in failed],
        retrying_batches=[_batch_row(row) for row in retrying],
    )


def _batch_row(row: Any) -> BatchProblem:
    batch_id, start, stop, attempts, error = row
    return BatchProblem(batch=batch_id, items=[start, stop], attempts=attempts, error=error)


def fail_job_of_batch(session: Session, *, batch_id: int, error: str) -> None:
    """A batch that cannot succeed (its source vanished): the job fails, saying why."""
    batch = session.get(JobBatch, batch_id)
    if batch is not None:
        session.execute(
            update(Job)
            .where(Job.id == batch.job_id)
            .values(status="failed", error=error, finished_at=func.now())
        )


# Ingestion's batches run through the shared machine (services.batches), by source position.
BATCHES = batches.register(
    batches.BatchKind(
        name="ingest",
        batches="job_batches",
        jobs="jobs",
        job_key="job_id",
        order="start",
        fail=fail_job_of_batch,
    )
)
