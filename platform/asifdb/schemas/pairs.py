"""`/v1/pairs` and `/v1/jobs`: a pair with its provenance; ingestion jobs."""

from datetime import datetime
from typing import Any

from asifdb.schemas.base import Schema


class Provenance(Schema):
    source_uri: str | None
    source_key: str | None
    metadata: dict[str, Any] | None
    job_id: int | None
    job_source: str | None
    added_by: str | None
    added_at: datetime | None


class PairLicense(Schema):
    id: int
    name: str
    status: str
    holder: str | None
    terms_url: str | None


class Pair(Schema):
    """A pair with its provenance, its licence, and how often it carried a prediction."""

    id: int
    caption: str
    collection: str
    status: str
    status_reason: str | None
    usable: bool
    image_sha256: str
    width: int | None
    height: int | None
    blob_uri: str | None
    embedded_by: list[str]  # every encoder that holds an embedding of it, by name
    provenance: Provenance
    license: PairLicense
    deleted_at: datetime | None
    deleted_by: str | None
    evidence_count: int


class PairDeleted(Schema):
    id: int
    deleted: bool


class JobAccepted(Schema):
    """The job is saved; `queued` says whether the workers have its batches yet (if not,
    `note` says why, and a worker sends them when it starts)."""

    job_id: int
    total: int
    status: str
    queued: bool
    note: str | None


class Reject(Schema):
    key: str | None
    code: str | None
    reason: str | None


class BatchProblem(Schema):
    batch: int
    items: list[int]
    attempts: int
    error: str | None


class Job(Schema):
    """An ingestion job's progress and a sample of its rejected items with their reasons."""

    id: int
    status: str
    source: str
    kind: str
    collection: str
    license_id: int
    total: int
    done: int
    duplicates: int
    rejected: int
    processed: int
    reject_reasons: dict[str, int]
    rejects: list[Reject]
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    failed_batches: list[BatchProblem]
    retrying_batches: list[BatchProblem]
