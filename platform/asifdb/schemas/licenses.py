"""`/v1/licenses`: licences, revocation and restoration, erasure."""

from datetime import datetime

from asifdb.schemas.base import Schema


class License(Schema):
    """A licence with its pair counts (all pairs, and those usable now)."""

    id: int
    name: str
    holder: str | None
    terms_url: str | None
    status: str
    pairs: int
    usable_pairs: int
    revoked_at: datetime | None
    revoked_by: str | None
    reason: str | None


class LicenseCreated(Schema):
    id: int
    name: str
    status: str


class LicenseRevoked(Schema):
    license: str
    status: str
    pairs_removed: int
    model_version: int


class LicenseRestored(Schema):
    license: str
    status: str
    pairs_restored: int
    model_version: int


class ErasurePreview(Schema):
    """What erasing the licence would remove."""

    license: str
    status: str
    pairs: int
    images: int
    predictions_with_evidence: int
    erasable: bool
    why_not: str | None


class ErasureCheck(Schema):
    """One check that something is gone, with what it found."""

    name: str
    passed: bool
    detail: str
    found_before: int | None = None
    found_after: int | None = None


class ErasureReport(Schema):
    """What an erasure removed, the checks that it is gone, and what it cannot erase."""

    license: str  # the licence's name
    erasure_id: int
    status: str  # "scrubbing" until the pages are rewritten and checked, then "complete"
    passed: bool
    reason: str
    erased_by: str
    started_at: datetime | None
    finished_at: datetime | None
    model_version: int
    removed: dict[str, int]
    checks: list[ErasureCheck]
    not_erased: list[str]
    seconds: dict[str, float] = {}


class LicenseSummary(Schema):
    id: int
    name: str
    status: str
    revoked_at: datetime | None
    reason: str | None


class Rerun(Schema):
    label: str
    score: float
    model_version: int


class ImpactedPrediction(Schema):
    prediction_id: int
    created_at: datetime
    label_then: str | None
    score_then: float | None
    share_of_score: float | None
    evidence_pairs: int
    rerun: Rerun | None
    changed: bool | None
    note: str | None = None


class Impact(Schema):
    """What the licence's pairs carried, and whether those predictions change without them."""

    license: LicenseSummary
    pairs: int
    usable_pairs: int
    predictions_influenced: int
    total_contribution: float
    sample_size: int
    changed: int
    sample: list[ImpactedPrediction]
    method: str
