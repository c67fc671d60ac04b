"""`/v1/curation`: caption fit, near-duplicate groups, pair value, the review queue, acts."""

from datetime import datetime

from asifdb.schemas.base import Schema
from asifdb.schemas.licenses import LicenseRevoked


class FitRefreshed(Schema):
    model_version: int
    usable_pairs: int
    scored: int
    aligned: bool
    k: int
    p: float
    seconds: float


class CuratedPair(Schema):
    """A usable pair as the curation lists show it."""

    pair_id: int
    caption: str
    collection: str
    source_key: str | None
    width: int | None
    height: int | None
    license: str
    marked: bool


class Mismatch(CuratedPair):
    fit: float
    score: float
    margin: float
    rank: int
    compared: int | None
    model_version: int
    aligned: bool | None
    k: int | None
    p: float | None


class FitStatus(Schema):
    """How current the caption-fit scores are: how many usable pairs are scored, in which
    space, and how many pairs changed since the oldest score."""

    model_version: int
    usable_pairs: int
    scored: int
    unscored: int
    oldest_score_version: int | None
    pairs_changed_since_oldest: int
    scored_in: dict[str, int]
    mixed_spaces: bool


class Mismatches(FitStatus):
    """One page of the worst-fitting pairs, and how current the scores are."""

    items: list[Mismatch]


class DuplicatesRefreshed(Schema):
    model_version: int
    usable_pairs: int
    threshold: float
    groups: int
    pairs_in_groups: int
    seconds: float


class GroupMember(CuratedPair):
    cosine: float
    keeper: bool
    fit: float | None


class DuplicateGroup(Schema):
    group_id: int
    cosine: float
    size: int
    threshold: float
    model_version: int
    pairs: list[GroupMember]


class Duplicates(Schema):
    groups: list[DuplicateGroup]
    total_groups: int


class ValuedPair(CuratedPair):
    value: float


class WhatIf(Schema):
    excluded: int
    accuracy_found_on: float
    accuracy_held_out: float


class PairValues(Schema):
    """Each pair's value on labelled images, and the accuracy without the most harmful."""

    model: str  # "default" or a named model (`asifdb models list`)
    model_version: int
    usable_pairs: int
    images_found_on: int
    images_held_out: int
    classes: list[str]
    templates: list[str]
    k: int
    p: float
    aggregation: str
    harmful_pairs: int
    helpful_pairs: int
    harmful: list[ValuedPair]
    helpful: list[ValuedPair]
    what_if: list[WhatIf]
    harmful_ids: list[int]
    seconds: float


class Review(Schema):
    pair_id: int
    caption: str
    status: str
    status_reason: str | None
    license: str
    license_status: str
    usable: bool
    marked_by: str | None
    marked_at: datetime
    reason: str | None
    fit: float | None


class Reviews(Schema):
    items: list[Review]
    total: int


class Marked(Schema):
    marked: int
    already_marked: int


class Unmarked(Schema):
    unmarked: int


class Rejected(Schema):
    rejected: int
    already_rejected: int
    pairs_removed: int
    model_version: int


class Restored(Schema):
    restored: int
    pairs_returned: int
    model_version: int


class LicensesRevoked(Schema):
    revoked: list[LicenseRevoked]
