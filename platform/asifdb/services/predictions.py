"""Predictions and their evidence: record every prediction, read it back, list and count usage."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from asifdb.db.models import Prediction, PredictionEvidence
from asifdb.errors import NotFound
from asifdb.schemas.predictions import EvidenceRow, ModelSettings, PairUsage, PredictionSummary
from asifdb.schemas.predictions import Prediction as PredictionOut


@dataclass(frozen=True)
class Evidence:
    """One pair's part in a prediction: its similarities and its contribution to the score."""

    pair_id: int
    label: str | None
    image_similarity: float
    caption_similarity: float
    contribution: float


def record(session: Session, *, evidence: list[Evidence], **fields: Any) -> int:
    """Store a prediction (fields of `Prediction`) with all of its evidence rows."""
    prediction = Prediction(**fields)
    session.add(prediction)
    session.flush()
    if evidence:
        session.execute(
            insert(PredictionEvidence),
            [
                {
                    "prediction_id": prediction.id,
                    "rank": rank,
                    "pair_id": e.pair_id,
                    "label": e.label,
                    "image_similarity": e.image_similarity,
                    "caption_similarity": e.caption_similarity,
                    "contribution": e.contribution,
                }
                for rank, e in enumerate(evidence, start=1)
            ],
        )
    return prediction.id


def get(session: Session, *, prediction_id: int, evidence_limit: int | None = 50) -> PredictionOut:
    """A prediction with its settings and its evidence (pairs, captions, licences)."""
    prediction = session.get(Prediction, prediction_id)
    if prediction is None:
        raise NotFound(f"no prediction {prediction_id}")
    rows = (
        session.execute(
            text(
                "SELECT rank, pair_id, caption, collection, license_id, license_name, "
                "license_status, pair_deleted, evidence_label, image_similarity, "
                "caption_similarity, contribution, share_of_score "
                "FROM prediction_provenance WHERE prediction_id = :p ORDER BY rank "
                + ("LIMIT :n" if evidence_limit else "")
            ),
            {"p": prediction_id, "n": evidence_limit},
        )
        .mappings()
        .all()
    )
    total = session.execute(
        text("SELECT count(*) FROM prediction_evidence WHERE prediction_id = :p"),
        {"p": prediction_id},
    ).scalar_one()
    return PredictionOut(
        id=prediction.id,
        created_at=prediction.created_at,
        task=prediction.task,
        channel=prediction.channel,
        client=prediction.client,
        input_sha256=prediction.input_sha256,
        input_name=prediction.input_name,
        candidates=prediction.candidates,
        result=prediction.result,
        predicted_label=prediction.predicted_label,
        score=prediction.score,
        model=ModelSettings(
            name=prediction.model,
            version=prediction.model_version,
            image_encoder=prediction.image_encoder,
            text_encoder=prediction.text_encoder,
            k=prediction.k,
            p=prediction.p,
            aggregation=prediction.aggregation,
            topk=prediction.topk_method,
        ),
        evidence_total=total,
        evidence=[EvidenceRow.model_validate(dict(r)) for r in rows],
    )


def list_recent(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    client: str | None = None,
    label: str | None = None,
    license_name: str | None = None,
    limit: int = 200,
) -> list[PredictionSummary]:
    """The prediction log, newest first, filtered by time, client, label or licence."""
    query = select(Prediction).order_by(Prediction.id.desc()).limit(limit)
    if since is not None:
        query = query.where(Prediction.created_at >= since)
    if until is not None:
        query = query.where(Prediction.created_at < until)
    if client:
        query = query.where(Prediction.client == client)
    if label:
        query = query.where(Prediction.predicted_label == label)
    if license_name:
        influenced = text(
            "SELECT prediction_id FROM licence_influence WHERE license_name = :l"
        ).bindparams(l=license_name)
        query = query.where(Prediction.id.in_(influenced))
    return [
        PredictionSummary(
            id=p.id,
            created_at=p.created_at,
            task=p.task,
            channel=p.channel,
            client=p.client,
            input_name=p.input_name,
            predicted_label=p.predicted_label,
            score=p.score,
            model_version=p.model_version,
        )
        for p in session.scalars(query)
    ]


def pair_usage(session: Session) -> list[PairUsage]:
    """How often each usable pair carried a prediction, never-used pairs included (zero)."""
    rows = session.execute(
        text(
            "SELECT u.id AS pair_id, u.caption, count(e.prediction_id) AS uses, "
            "coalesce(sum(e.contribution), 0) AS contribution "
            "FROM usable_pairs u LEFT JOIN prediction_evidence e ON e.pair_id = u.id "
            "GROUP BY u.id, u.caption ORDER BY uses DESC, u.id"
        )
    ).mappings()
    return [PairUsage(**r) for r in rows]
