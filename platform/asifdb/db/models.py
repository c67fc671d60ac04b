"""SQLAlchemy 2.0 models of the platform's tables; migrations in `migrations/` mirror them."""

from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    FetchedValue,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Erased: revoked, then its pairs physically removed (services/erasure.py); for good.
LICENSE_STATUSES = ("active", "revoked", "erased")
ERASURE_STATUSES = ("scrubbing", "complete")
PAIR_STATUSES = ("pending", "ready", "rejected")
JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")
# An ingestion job may also end "partial": some batches failed for good, the others went in.
INGEST_JOB_STATUSES = (*JOB_STATUSES, "partial")
FINISHED_JOB_STATUSES = ("done", "partial", "failed", "cancelled")
ITEM_STATUSES = ("pending", "ready", "duplicate", "rejected")
ROLES = ("app", "annotator", "steward", "auditor", "admin")
# A named model: building (its embeddings being made by a re-encode job), ready, or failed.
MODEL_STATUSES = ("building", "ready", "failed")

_naming = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _one_of(column: str, values: tuple[str, ...]) -> CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=column)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_naming)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


class License(Base):
    """A licence under which pairs were added; revoking it removes its pairs from the model."""

    __tablename__ = "licenses"
    __table_args__ = (_one_of("status", LICENSE_STATUSES),)

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    holder: Mapped[str | None] = mapped_column(Text)
    terms_url: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default="active")
    created_at: Mapped[datetime] = _now()
    created_by: Mapped[str | None] = mapped_column(Text)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)


class ModelState(Base):
    """The live model: one row (made by the migration) with the version and the encoders in use.

    The encoders are set by the first ingestion and never change without a re-encode.
    """

    __tablename__ = "model_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, server_default="1")
    image_encoder: Mapped[str | None] = mapped_column(Text)
    text_encoder: Mapped[str | None] = mapped_column(Text)
    # The default model's k and p since a named model was made the default (None: the
    # settings' K and P).
    k: Mapped[int | None] = mapped_column(Integer)
    p: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = _now()


class ModelVersion(Base):
    """One row per change of the usable set: what changed, and how many pairs were usable."""

    __tablename__ = "model_versions"

    version: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = _now()
    change: Mapped[str] = mapped_column(Text)
    usable_pairs: Mapped[int] = mapped_column(Integer)


class Job(Base):
    """An ingestion: a source split into batches of items, each item ending ready/dup/rejected."""

    __tablename__ = "jobs"
    __table_args__ = (_one_of("status", INGEST_JOB_STATUSES),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    source_kind: Mapped[str] = mapped_column(String(32))
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    collection: Mapped[str] = mapped_column(String(200))
    license_id: Mapped[int] = mapped_column(ForeignKey("licenses.id"))
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    total: Mapped[int] = mapped_column(Integer, server_default="0")
    done: Mapped[int] = mapped_column(Integer, server_default="0")
    duplicates: Mapped[int] = mapped_column(Integer, server_default="0")
    rejected: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class JobBatch(Base):
    """A slice [start, stop) of a job's items; the unit of work a worker task takes by id."""

    __tablename__ = "job_batches"
    __table_args__ = (UniqueConstraint("job_id", "start"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    start: Mapped[int] = mapped_column(Integer)
    stop: Mapped[int] = mapped_column(Integer)
    done: Mapped[bool] = mapped_column(server_default="false")
    # Tried INGEST_MAX_ATTEMPTS times, failing on its data each time: given up (see `error`).
    failed: Mapped[bool] = mapped_column(server_default="false")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Seconds per stage (read_validate, encode_image, encode_text, blobs_wait, database).
    timings: Mapped[dict[str, float] | None] = mapped_column(JSONB)


class JobItem(Base):
    """What became of one source item: the pair it made, or why it was a duplicate or rejected."""

    __tablename__ = "job_items"
    __table_args__ = (UniqueConstraint("job_id", "key"), _one_of("status", ITEM_STATUSES))

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    reason_code: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    pair_id: Mapped[int | None] = mapped_column(ForeignKey("pair_registry.id"))
    created_at: Mapped[datetime] = _now()


class Pair(Base):
    """An image-caption pair: an anchor of the model, with its provenance and licence."""

    __tablename__ = "pairs"
    __table_args__ = (
        UniqueConstraint("collection", "image_sha256", "caption"),
        _one_of("status", PAIR_STATUSES),
        Index("ix_pairs_license_id", "license_id"),
        # Whether any pair still holds a blob (blob_refs): one probe, not a scan per blob.
        Index("ix_pairs_blob_uri", "blob_uri"),
    )

    # Registered by a trigger on insert (deferred check): the id outlives the row as history.
    id: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("pair_registry.id", deferrable=True, initially="DEFERRED"),
        Identity(),
        primary_key=True,
    )
    collection: Mapped[str] = mapped_column(String(200))
    image_sha256: Mapped[str] = mapped_column(String(64))
    caption: Mapped[str] = mapped_column(Text)
    source_uri: Mapped[str | None] = mapped_column(Text)
    source_key: Mapped[str | None] = mapped_column(Text)
    source_metadata: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    blob_uri: Mapped[str | None] = mapped_column(Text)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    license_id: Mapped[int] = mapped_column(ForeignKey("licenses.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    status_reason: Mapped[str | None] = mapped_column(Text)
    added_by: Mapped[str | None] = mapped_column(Text)
    added_at: Mapped[datetime] = _now()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_by: Mapped[str | None] = mapped_column(Text)


class EncoderRecord(Base):
    """An encoder whose embeddings the database holds: its modality and width, fixed once seen."""

    __tablename__ = "encoders"
    __table_args__ = (
        CheckConstraint("modality IN ('image', 'text')", name="modality"),
        CheckConstraint("dim BETWEEN 1 AND 16000", name="width"),
        UniqueConstraint("name", "dim"),
    )

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    modality: Mapped[str] = mapped_column(String(8))
    dim: Mapped[int] = mapped_column(Integer)
    first_seen_at: Mapped[datetime] = _now()


class NamedModel(Base):
    """A model beside the default one over the same pairs: two encoders, k, p and which pairs
    (all, or one collection). Its definition never changes once made (a trigger keeps it);
    its status does. The default model is `model_state` (its encoders) with the settings' k, p.
    """

    __tablename__ = "models"
    __table_args__ = (
        _one_of("status", MODEL_STATUSES),
        CheckConstraint("name ~ '^[a-z0-9][a-z0-9._-]{0,62}$' AND name <> 'default'", name="name"),
        CheckConstraint("k BETWEEN 1 AND 10000", name="k"),
        CheckConstraint("p >= 1 AND p <= 64", name="p"),
    )

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    image_encoder: Mapped[str] = mapped_column(Text)
    text_encoder: Mapped[str] = mapped_column(Text)
    k: Mapped[int] = mapped_column(Integer)
    p: Mapped[float] = mapped_column(Float)
    collection: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default="building")
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    ready_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PairEmbedding(Base):
    """A pair's embedding by one encoder, of that encoder's width (the database checks it): a
    pair holds one per encoder it was embedded by, so several encoders share one collection."""

    __tablename__ = "pair_embeddings"
    __table_args__ = (
        ForeignKeyConstraint(
            ["encoder", "dim"],
            ["encoders.name", "encoders.dim"],
            name="fk_pair_embeddings_encoder_encoders",
        ),
        CheckConstraint("vector_dims(embedding) = dim", name="width"),
        Index("ix_pair_embeddings_encoder", "encoder", "pair_id"),
    )

    pair_id: Mapped[int] = mapped_column(
        ForeignKey("pairs.id", ondelete="CASCADE"), primary_key=True
    )
    encoder: Mapped[str] = mapped_column(Text, primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    embedding: Mapped[Any] = mapped_column(HALFVEC())


class PairRegistry(Base):
    """Every pair id ever used, with its licence: what history (evidence, usability, job
    items) references, so that erasing a pair's row keeps its history as ids alone.

    Rows are made by a trigger on `pairs` (migration 0010); the database refuses to delete a
    pair whose registry row is not marked erased, under a licence that is not erased.
    """

    __tablename__ = "pair_registry"
    __table_args__ = (Index("ix_pair_registry_license_id", "license_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    license_id: Mapped[int] = mapped_column(ForeignKey("licenses.id"))
    erasure_id: Mapped[int | None] = mapped_column(ForeignKey("erasures.id"))
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Erasure(Base):
    """A licence erased: its pairs, blobs and derived rows removed, then the pages rewritten.

    `status` is "scrubbing" from the commit of the removal until the blobs and pages are clean
    and the report is written ("complete"); `asifdb licenses erase` again resumes it.
    """

    __tablename__ = "erasures"
    __table_args__ = (_one_of("status", ERASURE_STATUSES), UniqueConstraint("license_id"))

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    license_id: Mapped[int] = mapped_column(ForeignKey("licenses.id"))
    license_name: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    erased_by: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default="scrubbing")
    model_version: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Counts per kind, fixed by the removal's transaction.
    removed: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class Reencode(Base):
    """A switch of encoders: every ready pair re-embedded from its blob, then one atomic switch.

    The new embeddings go into `pair_embeddings` beside the old ones; until the switch the
    model's encoders stay the old, so no query reads them.
    """

    __tablename__ = "reencodes"
    __table_args__ = (_one_of("status", JOB_STATUSES),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    image_encoder: Mapped[str] = mapped_column(Text)
    text_encoder: Mapped[str] = mapped_column(Text)
    from_image_encoder: Mapped[str | None] = mapped_column(Text)
    from_text_encoder: Mapped[str | None] = mapped_column(Text)
    # The named model whose embeddings this job builds (it then becomes ready; the default's
    # encoders stay), or None: a switch of the default model's encoders at the end.
    model: Mapped[str | None] = mapped_column(ForeignKey("models.name"))
    # Its end makes `model` the default model (its encoders, k and p) rather than only ready.
    make_default: Mapped[bool] = mapped_column(Boolean, server_default=false())
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    total: Mapped[int] = mapped_column(Integer, server_default="0")
    done: Mapped[int] = mapped_column(Integer, server_default="0")
    missing: Mapped[int] = mapped_column(Integer, server_default="0")
    switched_version: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReencodeBatch(Base):
    """The pairs (by id, fixed when the re-encode starts) one worker task re-embeds."""

    __tablename__ = "reencode_batches"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    reencode_id: Mapped[int] = mapped_column(
        ForeignKey("reencodes.id", ondelete="CASCADE"), index=True
    )
    pair_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    done: Mapped[bool] = mapped_column(server_default="false")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    timings: Mapped[dict[str, float] | None] = mapped_column(JSONB)


class PairUsability(Base):
    """Intervals of model versions during which a pair was usable: the model at any version."""

    __tablename__ = "pair_usability"
    __table_args__ = (Index("ix_pair_usability_open", "pair_id", "to_version"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pair_registry.id"))
    from_version: Mapped[int] = mapped_column(BigInteger)
    to_version: Mapped[int | None] = mapped_column(BigInteger)


class LabelSet(Base):
    """Named candidate labels with their caption templates, reusable across requests."""

    __tablename__ = "label_sets"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    classes: Mapped[list[str]] = mapped_column(JSONB)
    templates: Mapped[list[str]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _now()
    created_by: Mapped[str | None] = mapped_column(Text)


class Prediction(Base):
    """A recorded prediction with the model settings it ran under."""

    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_created_at", "created_at"),
        Index("ix_predictions_input_sha256", "input_sha256"),  # kept query images (blob_refs)
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    created_at: Mapped[datetime] = _now()
    task: Mapped[str] = mapped_column(String(32))
    input_sha256: Mapped[str | None] = mapped_column(String(64))
    input_name: Mapped[str | None] = mapped_column(Text)
    candidates: Mapped[dict[str, Any]] = mapped_column(JSONB)
    label_set_id: Mapped[int | None] = mapped_column(ForeignKey("label_sets.id"))
    result: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # The model it ran on: "default" (model_state's encoders) or a named model's name.
    model: Mapped[str] = mapped_column(Text, server_default="default")
    predicted_label: Mapped[str | None] = mapped_column(Text)
    score: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[int] = mapped_column(BigInteger)
    image_encoder: Mapped[str] = mapped_column(Text)
    text_encoder: Mapped[str] = mapped_column(Text)
    k: Mapped[int] = mapped_column(Integer)
    p: Mapped[float] = mapped_column(Float)
    aggregation: Mapped[str | None] = mapped_column(String(16))
    topk_method: Mapped[str] = mapped_column(String(16))
    client: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(16))


class PredictionEvidence(Base):
    """A pair that carried a prediction, with its weight; kept as history if the pair goes."""

    __tablename__ = "prediction_evidence"
    __table_args__ = (Index("ix_prediction_evidence_pair_id", "pair_id"),)

    prediction_id: Mapped[int] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), primary_key=True
    )
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pair_registry.id"))
    label: Mapped[str | None] = mapped_column(Text)
    image_similarity: Mapped[float] = mapped_column(Float)
    caption_similarity: Mapped[float] = mapped_column(Float)
    contribution: Mapped[float] = mapped_column(Float)


class AuditEvent(Base):
    """Append-only log of who added, revoked, restored or deleted what, when and why.

    Hash-chained (migration 0009): a trigger sets `at`, `chain_seq`, `prev_hash` and `hash` on
    insert, whatever the inserter passed; `asifdb audit verify` checks the chain.
    """

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_target", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = _now()
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    model_version: Mapped[int | None] = mapped_column(BigInteger)
    # The event's place in the chain (1, 2, ... without gaps), the previous event's hash (64
    # zeros for the first) and the hex SHA-256 of audit_event_canonical(event).
    chain_seq: Mapped[int] = mapped_column(BigInteger, unique=True, server_default=FetchedValue())
    prev_hash: Mapped[str] = mapped_column(Text, server_default=FetchedValue())
    hash: Mapped[str] = mapped_column(Text, server_default=FetchedValue())


class AuditChainHead(Base):
    """The audit chain's last link (one row): only the insert trigger's function writes it."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(Text)


class ApiKey(Base):
    """An API key, stored as a SHA-256 hash, with the role that bounds what it may do."""

    __tablename__ = "api_keys"
    __table_args__ = (_one_of("role", ROLES),)

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = _now()
    created_by: Mapped[str | None] = mapped_column(Text)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PairFit(Base):
    """How well a pair's caption fits its image by the rest of the collection (curation).

    Computed leave-one-out at `model_version`; `fit` orders the mismatch list (lowest first).
    """

    __tablename__ = "pair_fit"
    __table_args__ = (Index("ix_pair_fit_fit", "fit"),)

    pair_id: Mapped[int] = mapped_column(
        ForeignKey("pairs.id", ondelete="CASCADE"), primary_key=True
    )
    model_version: Mapped[int] = mapped_column(BigInteger)
    fit: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    margin: Mapped[float] = mapped_column(Float)
    rank: Mapped[int] = mapped_column(Integer)
    compared: Mapped[int] = mapped_column(Integer)
    # The space it was scored in (the collection's alignment or the encoders'), with k and p;
    # NULL: scored before migration 0006.
    aligned: Mapped[bool | None]
    k: Mapped[int | None] = mapped_column(Integer)
    p: Mapped[float | None] = mapped_column(Float)
    computed_at: Mapped[datetime] = _now()


class NearDuplicate(Base):
    """A pair in a group of near-identical images (curation); one member is the suggested keeper."""

    __tablename__ = "near_duplicates"
    __table_args__ = (Index("ix_near_duplicates_group_id", "group_id"),)

    pair_id: Mapped[int] = mapped_column(
        ForeignKey("pairs.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[int] = mapped_column(BigInteger)
    model_version: Mapped[int] = mapped_column(BigInteger)
    threshold: Mapped[float] = mapped_column(Float)
    cosine: Mapped[float] = mapped_column(Float)
    keeper: Mapped[bool] = mapped_column(server_default="false")
    computed_at: Mapped[datetime] = _now()


class ReviewMark(Base):
    """A pair marked for a person to look at, by whom and why (curation's review queue)."""

    __tablename__ = "review_marks"

    pair_id: Mapped[int] = mapped_column(
        ForeignKey("pairs.id", ondelete="CASCADE"), primary_key=True
    )
    marked_by: Mapped[str] = mapped_column(Text)
    marked_at: Mapped[datetime] = _now()
    reason: Mapped[str | None] = mapped_column(Text)
