"""`/v1/classify`, `/v1/retrieve`, `/v1/predictions`: answers and their recorded evidence."""

from datetime import datetime
from typing import Any

from asifdb.schemas.base import Schema


class EvidencePair(Schema):
    """A pair that carried a classification, with its caption and licence."""

    pair_id: int
    caption: str | None
    license_id: int
    license: str
    image_similarity: float
    caption_similarity: float
    contribution: float


class Classification(Schema):
    """One image's answer among the candidates, with the pairs that carried it."""

    label: str
    score: float
    scores: dict[str, float]
    aggregation: str
    caption: str | None
    prediction_id: int | None
    input: str
    input_sha256: str
    model: str  # "default" or a named model (`asifdb models list`)
    model_version: int
    k: int
    p: float
    method: str
    usable_pairs: int
    evidence_pairs: int
    evidence: list[EvidencePair]


class Hit(Schema):
    rank: int
    candidate: str | None
    pair_id: int | None
    score: float


class Retrieval(Schema):
    prediction_id: int
    direction: str
    model: str
    model_version: int
    hits: list[Hit]


class ModelSettings(Schema):
    name: str
    version: int
    image_encoder: str
    text_encoder: str
    k: int
    p: float
    aggregation: str | None
    topk: str


class EvidenceRow(Schema):
    """One evidence pair of a recorded prediction (the `prediction_provenance` view's row)."""

    rank: int
    pair_id: int
    caption: str | None
    collection: str | None
    license_id: int
    license_name: str
    license_status: str
    pair_deleted: bool
    evidence_label: str | None
    image_similarity: float
    caption_similarity: float
    contribution: float
    share_of_score: float | None


class Prediction(Schema):
    """A recorded prediction with its settings and its evidence."""

    id: int
    created_at: datetime
    task: str
    channel: str | None
    client: str | None
    input_sha256: str | None
    input_name: str | None
    candidates: dict[str, Any]
    result: dict[str, Any]
    predicted_label: str | None
    score: float | None
    model: ModelSettings
    evidence_total: int
    evidence: list[EvidenceRow]


class PredictionSummary(Schema):
    """A line of the prediction log."""

    id: int
    created_at: datetime
    task: str
    channel: str | None
    client: str | None
    input_name: str | None
    predicted_label: str | None
    score: float | None
    model_version: int


class PairUsage(Schema):
    """How often a usable pair carried a prediction, and its total contribution."""

    pair_id: int
    caption: str
    uses: int
    contribution: float
