"""Switching encoders: re-embed every ready pair from the blob store in batches (run by workers),
then switch the model to the new encoders in one transaction. Called by `asifdb reencode` and
the worker's `asifdb.reencode_batch` task.

The new embeddings go into `pair_embeddings` beside the old ones (any width: each encoder's own),
and every query keeps reading the old ones, since `usable_pairs` reads the model's encoders'; the
switch sets the model's encoders and bumps the model version together, so no reader ever sees a
mix. Pairs that already hold both new embeddings (a switch back) are not embedded again. A
batch is done in one transaction under a row lock: idempotent and resumable.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from asifdb.blobs import BlobNotFound, BlobStore
from asifdb.db.models import NamedModel, Reencode, ReencodeBatch
from asifdb.encoders import Encoder
from asifdb.errors import ConfigError, Conflict, NotFound
from asifdb.schemas.encoders import ReencodeReport
from asifdb.services import audit, batches, embeddings, model
from asifdb.services.model import Encoders, EncodersFor
from asifdb.services.stage_timer import StageTimer

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 256
_ACTIVE = ("queued", "running")


def canonical_names(*, image_encoder: str, text_encoder: str) -> tuple[str, str]:
    """The encoders' stable identities (what pairs record), from any accepted name."""
    from asifdb.encoders import get_encoder

    image, text_ = get_encoder(image_encoder), get_encoder(text_encoder)
    if image.modality != "image" or text_.modality != "text":
        raise ConfigError(
            f"{image_encoder!r} must be an image encoder and {text_encoder!r} a text encoder"
        )
    return image.name, text_.name


def start(
    session: Session,
    *,
    image_encoder: str,
    text_encoder: str,
    actor: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    model: str | None = None,
    collection: str | None = None,
    make_default: bool = False,
) -> Reencode:
    """Plan the re-encode of every ready pair by the named encoders (canonical names).

    `model`: the named model (services/models.py) whose embeddings this builds, over its
    `collection` (None: every pair); at the end it becomes ready and the default model keeps
    its encoders; with `make_default`, the end makes it the default model (its encoders, k and
    p). Without a model, the end switches the default model to these encoders. Refuses
    while another re-encode is unfinished. With no pairs, ends at once.
    """
    active = session.scalar(select(Reencode.id).where(Reencode.status.in_(_ACTIVE)))
    if active is not None:
        raise Conflict(f"re-encode {active} is still running: wait for it to finish")
    state = session.execute(
        text("SELECT image_encoder, text_encoder FROM model_state WHERE id = 1")
    ).one()
    pair_ids = list(
        session.scalars(
            text(
                "SELECT id FROM pairs WHERE status = 'ready' AND deleted_at IS NULL "
                "AND (CAST(:c AS text) IS NULL OR collection = :c) ORDER BY id"
            ),
            {"c": collection},
        )
    )
    job = Reencode(
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        from_image_encoder=state.image_encoder,
        from_text_encoder=state.text_encoder,
        total=len(pair_ids),
        created_by=actor,
        model=model,
        make_default=make_default,
    )
    session.add(job)
    session.flush()
    session.add_all(
        ReencodeBatch(reencode_id=job.id, pair_ids=pair_ids[i : i + batch_size])
        for i in range(0, len(pair_ids), batch_size)
    )
    audit.record(
        session,
        actor=actor,
        action="reencode.create",
        target_type="reencode",
        target_id=str(job.id),
        details={
            "from": [state.image_encoder, state.text_encoder],
            "to": [image_encoder, text_encoder],
            "pairs": len(pair_ids),
            "model": model,
            "make_default": make_default,
        },
    )
    if not pair_ids:
        _switch(session, job, blobs=None, encoders=None, timer=StageTimer())
    return job


@dataclass
class BatchOutcome:
    batch_id: int
    status: str  # "done", "already_done", "busy", "switched"
    encoded: int = 0
    missing: int = 0


def process_batch(
    *,
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    encoders_for: EncodersFor,
    batch_id: int,
) -> BatchOutcome:
    """Re-embed one batch's pairs; the batch that completes the re-encode also switches."""
    timer = StageTimer()
    with sessions() as session, session.begin():
        batch = session.execute(
            select(ReencodeBatch)
            .where(ReencodeBatch.id == batch_id)
            .with_for_update(skip_locked=True)
        ).scalar_one_or_none()
        if batch is None:
            if session.get(ReencodeBatch, batch_id) is None:
                raise NotFound(f"no re-encode batch {batch_id}")
            return BatchOutcome(batch_id, "busy")
        job = session.get_one(Reencode, batch.reencode_id)
        if batch.done or job.status not in _ACTIVE:
            return BatchOutcome(batch_id, "already_done")
        batch.attempts += 1
        if job.status == "queued":
            job.status = "running"
            job.started_at = func.now()
        encoders = encoders_for(job.image_encoder, job.text_encoder)
        outcome = BatchOutcome(batch_id, "done")
        outcome.encoded, outcome.missing = _stage(
            session, job, batch.pair_ids, blobs, encoders, timer
        )
        with timer.stage("database"):
            batch.done = True
            batch.finished_at = func.now()
            session.execute(
                update(Reencode)
                .where(Reencode.id == job.id)
                .values(
                    done=Reencode.done + outcome.encoded,
                    missing=Reencode.missing + outcome.missing,
                )
            )
            session.flush()
            remaining = session.scalar(
                select(func.count())
                .select_from(ReencodeBatch)
                .where(ReencodeBatch.reencode_id == job.id, ReencodeBatch.done.is_(False))
            )
        if remaining == 0:
            session.refresh(job)
            _switch(session, job, blobs=blobs, encoders=encoders, timer=timer)
            outcome.status = "switched"
        batch.timings = timer.seconds()
    log.info(
        "re-encode %d batch %d: %d encoded, %d missing blobs; %s",
        job.id,
        batch_id,
        outcome.encoded,
        outcome.missing,
        timer.summary(),
    )
    return outcome


def _stage(
    session: Session,
    job: Reencode,
    pair_ids: Sequence[int],
    blobs: BlobStore,
    encoders: Encoders,
    timer: StageTimer,
) -> tuple[int, int]:
    """Embed the pairs by the new encoders into `pair_embeddings`: (encoded, missing). A pair
    holding both already counts as encoded; one holding one of them is embedded by the other
    alone (a model sharing the default's image encoder encodes no image, and needs no blob)."""
    with timer.stage("database"):
        held = session.scalar(
            text(
                "SELECT count(*) FROM pairs p WHERE p.id = ANY(CAST(:ids AS bigint[])) "
                "AND p.status = 'ready' AND p.deleted_at IS NULL "
                f"AND {_HOLDS_BOTH}"
            ),
            {"ids": list(pair_ids), "i": job.image_encoder, "t": job.text_encoder},
        )
        rows = session.execute(
            text(
                f"SELECT id, image_sha256, caption, {_HOLDS_IMAGE} AS has_image, "
                f"{_HOLDS_TEXT} AS has_text FROM pairs p "
                "WHERE id = ANY(CAST(:ids AS bigint[])) AND status = 'ready' "
                "AND deleted_at IS NULL "
                f"AND NOT {_HOLDS_BOTH} ORDER BY id"
            ),
            {"ids": list(pair_ids), "i": job.image_encoder, "t": job.text_encoder},
        ).all()
    found: list[_ToEmbed] = []
    missing = 0
    with timer.stage("read_blobs"):
        for pair_id, sha256, caption, has_image, has_text in rows:
            if has_image:  # its image is embedded already: no blob needed
                found.append(_ToEmbed(pair_id, None, caption, True, has_text))
                continue
            try:
                found.append(_ToEmbed(pair_id, blobs.get(sha256), caption, False, has_text))
            except BlobNotFound:
                log.warning("re-encode %d: pair %d has no blob %s", job.id, pair_id, sha256)
                missing += 1
    with timer.stage("database"):
        # The side a pair holds is read back, not encoded again (a pair erased since it was
        # listed is left out: it has nothing to embed).
        have_image = embeddings.stored(
            session, encoder=job.image_encoder, pair_ids=[r.id for r in found if r.has_image]
        )
        have_text = embeddings.stored(
            session, encoder=job.text_encoder, pair_ids=[r.id for r in found if r.has_text]
        )
    found = [
        r
        for r in found
        if (not r.has_image or r.id in have_image) and (not r.has_text or r.id in have_text)
    ]
    if not found:
        return held, missing
    ids = [r.id for r in found]
    with timer.stage("encode_image"):
        image = _embedded(
            encoders.image, [None if r.has_image else r.image for r in found], ids, have_image
        )
    with timer.stage("encode_text"):
        text_ = _embedded(
            encoders.text, [None if r.has_text else r.caption for r in found], ids, have_text
        )
    with timer.stage("database"):
        staged = embeddings.stage(
            session,
            image_encoder=job.image_encoder,
            image=image,
            text_encoder=job.text_encoder,
            text_=text_,
        )
        embeddings.store(session, staged, pair_ids=ids, ords=list(range(len(ids))))
        _join_if_current(session, job, ids)
        if job.model is not None and session.get_one(NamedModel, job.model).status == "ready":
            # A ready model's set grows with this batch: a version, so every process's copy
            # of it re-syncs and one (model, version) always means one set of pairs.
            model.change_usable(
                session,
                change=f"reencode {job.id}: model {job.model} +{len(found)} pairs",
                always=True,
            )
    return held + len(found), missing


@dataclass(frozen=True)
class _ToEmbed:
    """A pair of a re-encode batch lacking one or both of the new encoders' embeddings."""

    id: int
    image: bytes | None  # its blob, where its image embedding is still to make
    caption: str
    has_image: bool
    has_text: bool


def _embedded(
    encoder: Encoder, inputs: list, pair_ids: list[int], have: dict[int, np.ndarray]
) -> np.ndarray:
    """Row i: pair `pair_ids[i]`'s embedding by `encoder`: made now from `inputs[i]`, or, where
    that is None, the stored one (its float16 values, which `store` keeps as they are)."""
    new = [i for i, item in enumerate(inputs) if item is not None]
    made = encoder.embed_batch([inputs[i] for i in new]) if new else None
    if made is not None and len(new) == len(inputs):
        return made
    dim = made.shape[1] if made is not None else len(next(iter(have.values())))
    out = np.empty((len(inputs), dim), dtype=np.float32)
    for i, item in enumerate(inputs):
        if item is None:
            out[i] = have[pair_ids[i]]
    if made is not None:
        out[new] = made
    return out


def _join_if_current(session: Session, job: Reencode, pair_ids: Sequence[int]) -> None:
    """A re-encode to the encoders the model already uses (e.g. for pairs whose blobs were
    missing, once restored) makes the pairs it embeds usable at once, so their arrival goes
    through `model.change_usable` here, not silently: the model row is locked before the
    usable set is read, so a concurrent revocation is seen (these pairs held no embedding by
    both encoders, so none was usable before)."""
    current = session.execute(
        text("SELECT image_encoder, text_encoder FROM model_state WHERE id = 1")
    ).one()
    if tuple(current) != (job.image_encoder, job.text_encoder):
        return
    session.execute(text("SELECT 1 FROM model_state WHERE id = 1 FOR UPDATE"))
    joined = session.scalars(
        text("SELECT id FROM usable_pairs WHERE id = ANY(CAST(:ids AS bigint[])) ORDER BY id"),
        {"ids": list(pair_ids)},
    ).all()
    model.change_usable(
        session,
        change=f"reencode {job.id}: +{len(joined)} pairs embedded by the model's encoders",
        returning=joined,
    )


# A pair (alias p) holds an embedding by the re-encode's image encoder (:i), its text
# encoder (:t), both.
_HOLDS_IMAGE = "EXISTS (SELECT FROM pair_embeddings e WHERE e.pair_id = p.id AND e.encoder = :i)"
_HOLDS_TEXT = "EXISTS (SELECT FROM pair_embeddings e WHERE e.pair_id = p.id AND e.encoder = :t)"
_HOLDS_BOTH = f"({_HOLDS_IMAGE} AND {_HOLDS_TEXT})"


def _switch(
    session: Session,
    job: Reencode,
    *,
    blobs: BlobStore | None,
    encoders: Encoders | None,
    timer: StageTimer,
) -> None:
    """Make the staged embeddings the model's, in this transaction (the model row locked)."""
    with timer.stage("switch"):
        session.execute(text("SELECT 1 FROM model_state WHERE id = 1 FOR UPDATE"))
        # Pairs ingested (with the old encoders) since the re-encode started: embed them now,
        # under the lock, so the new model has them too. Ingestion re-checks the encoders under
        # the same lock before it commits, so none can slip in after this.
        late = list(
            session.scalars(
                text(
                    "SELECT p.id FROM pairs p WHERE p.status = 'ready' AND p.deleted_at IS NULL "
                    "AND p.id NOT IN ("
                    "SELECT unnest(pair_ids) FROM reencode_batches WHERE reencode_id = :r) "
                    "AND (CAST(:c AS text) IS NULL OR p.collection = :c) ORDER BY p.id"
                ),
                {"r": job.id, "c": _collection(session, job)},
            )
        )
    if late and blobs is not None and encoders is not None:
        encoded, missing = _stage(session, job, late, blobs, encoders, timer)
        job.total += len(late)
        job.done += encoded
        job.missing += missing
    if job.model is not None and not job.make_default:
        _model_ready(session, job, timer)
        return
    with timer.stage("switch"):
        before = set(session.scalars(text("SELECT id FROM usable_pairs")))
        # A named model made the default brings its k and p; a plain re-encode keeps them.
        named = session.get(NamedModel, job.model) if job.model else None
        session.execute(
            text(
                "UPDATE model_state SET image_encoder = :i, text_encoder = :t, "
                "k = CASE WHEN :named THEN :k ELSE k END, "
                "p = CASE WHEN :named THEN :p ELSE p END WHERE id = 1"
            ),
            {
                "i": job.image_encoder,
                "t": job.text_encoder,
                "named": named is not None,
                "k": named.k if named else None,
                "p": named.p if named else None,
            },
        )
        after = set(session.scalars(text("SELECT id FROM usable_pairs")))
        # Pairs whose blob was missing have no embedding by the new encoders: with them they
        # are no longer usable (their old embeddings stay, for a switch back).
        version = model.change_usable(
            session,
            change=f"reencode {job.id}: encoders {job.image_encoder} + {job.text_encoder}",
            leaving=sorted(before - after),
            returning=sorted(after - before),
            always=True,
        )
        _finish(
            session,
            job,
            version,
            action="model.reencode",
            target=("reencode", str(job.id)),
            details={
                "from": [job.from_image_encoder, job.from_text_encoder],
                "to": [job.image_encoder, job.text_encoder],
                "model": job.model,
                "no_longer_usable": len(before - after),
            },
        )


def _collection(session: Session, job: Reencode) -> str | None:
    if job.model is None:
        return None
    return session.get_one(NamedModel, job.model).collection


def _model_ready(session: Session, job: Reencode, timer: StageTimer) -> None:
    """A named model's build is complete: it is ready, as a new version (so every process's
    copy of it reloads); the default model is untouched."""
    with timer.stage("switch"):
        named = session.get_one(NamedModel, job.model)
        named.status, named.error, named.ready_at = "ready", None, func.now()
        version = model.change_usable(
            session, change=f"reencode {job.id}: model {job.model} built", always=True
        )
        _finish(
            session,
            job,
            version,
            action="model.ready",
            target=("model", str(job.model)),
            details={"encoders": [job.image_encoder, job.text_encoder], "reencode": job.id},
        )


def _finish(
    session: Session,
    job: Reencode,
    version: int,
    *,
    action: str,
    target: tuple[str, str],
    details: dict[str, object],
) -> None:
    """The re-encode is done at `version`, and the audit log says so (with its pair counts)."""
    job.status = "done"
    job.finished_at = func.now()
    job.switched_version = version
    audit.record(
        session,
        actor=job.created_by or "unknown",
        action=action,
        target_type=target[0],
        target_id=target[1],
        model_version=version,
        details={**details, "pairs": job.done, "missing_blobs": job.missing},
    )


def fail(session: Session, *, batch_id: int, error: str) -> None:
    """A batch that cannot succeed (an encoder that cannot load): the re-encode fails, saying why.

    Nothing was switched; the embeddings it made stay (a retry of the same encoders reuses
    them), invisible to queries until some re-encode switches to their encoders.
    """
    batch = session.get(ReencodeBatch, batch_id)
    if batch is not None:
        session.execute(
            update(Reencode)
            .where(Reencode.id == batch.reencode_id, Reencode.status.in_(_ACTIVE))
            .values(status="failed", error=error, finished_at=func.now())
        )
        # A named model's first build failing fails the model (a later build of a ready one
        # leaves it ready, with the pairs it already has).
        session.execute(
            update(NamedModel)
            .where(
                NamedModel.status == "building",
                NamedModel.name
                == select(Reencode.model).where(Reencode.id == batch.reencode_id).scalar_subquery(),
            )
            .values(status="failed", error=error)
        )


# Re-encode's batches run through the shared machine (services.batches).
BATCHES = batches.register(
    batches.BatchKind(
        name="reencode",
        batches="reencode_batches",
        jobs="reencodes",
        job_key="reencode_id",
        order="id",
        fail=fail,
    )
)


def report(session: Session, *, reencode_id: int) -> ReencodeReport:
    """A re-encode's progress: pairs done of total, missing blobs, status, switch version."""
    job = session.get(Reencode, reencode_id)
    if job is None:
        raise NotFound(f"no re-encode {reencode_id}")
    return ReencodeReport(
        id=job.id,
        status=job.status,
        image_encoder=job.image_encoder,
        text_encoder=job.text_encoder,
        from_image_encoder=job.from_image_encoder,
        from_text_encoder=job.from_text_encoder,
        total=job.total,
        done=job.done,
        missing=job.missing,
        processed=job.done + job.missing,
        switched_version=job.switched_version,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )
