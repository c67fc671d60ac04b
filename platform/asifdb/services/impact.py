"""A licence's impact: its pairs, the past predictions they carried, and a re-run without them.

The deletion-verification report: for the most influenced predictions, the same input,
candidates and settings are classified again now, without the licence's pairs (a dry run,
not recorded), and the report says whether each prediction changed. Each is re-run on the
model that made it (the default or a named one, as that model is now: `ModelOf`).
"""

from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from asifdb.anchors.live import LiveModel
from asifdb.blobs import BlobNotFound, BlobStore
from asifdb.db.models import License, Pair, Prediction
from asifdb.errors import Conflict, NotFound
from asifdb.schemas.licenses import Impact, ImpactedPrediction, LicenseSummary, Rerun
from asifdb.services import classify
from asifdb.services.labelsets import Candidates
from asifdb.services.model import Encoders


class ModelParts(Protocol):
    """A model's parts in a process (`context.ModelHandle`): its live anchors and encoders."""

    @property
    def live(self) -> LiveModel: ...

    @property
    def encoders(self) -> Encoders: ...


ModelOf = Callable[[str | None], ModelParts]
"""The parts of the model called so (None: the default), as it is now: `Platform.model`."""


def _licence(session: Session, licence: str | int) -> License:
    column = License.id if isinstance(licence, int) else License.name
    found = session.scalar(select(License).where(column == licence))
    if found is None:
        raise NotFound(f"no licence {licence!r}")
    return found


def licence_impact(
    *,
    sessions: sessionmaker[Session],
    model_of: ModelOf,
    blobs: BlobStore,
    licence: str | int,
    sample: int = 20,
) -> Impact:
    """What the licence's pairs did, and whether the predictions they carried change now."""
    with sessions() as session:
        lic = _licence(session, licence)
        pair_ids = frozenset(session.scalars(select(Pair.id).where(Pair.license_id == lic.id)))
        usable = session.execute(
            text("SELECT count(*) FROM usable_pairs WHERE license_id = :l"), {"l": lic.id}
        ).scalar_one()
        influenced = (
            session.execute(
                text(
                    "SELECT prediction_id, predicted_label, evidence_pairs, contribution, "
                    "share_of_score FROM licence_influence WHERE license_id = :l "
                    "ORDER BY share_of_score DESC NULLS LAST, prediction_id"
                ),
                {"l": lic.id},
            )
            .mappings()
            .all()
        )
        summary = LicenseSummary(
            id=lic.id,
            name=lic.name,
            status=lic.status,
            revoked_at=lic.revoked_at,
            reason=lic.reason,
        )
        total_contribution = float(sum(r["contribution"] or 0 for r in influenced))
        chosen = [dict(r) for r in influenced[:sample]]
        originals = {
            p.id: p
            for p in session.scalars(
                select(Prediction).where(Prediction.id.in_([r["prediction_id"] for r in chosen]))
            )
        }
    reruns = [
        _rerun(sessions, model_of, blobs, originals[r["prediction_id"]], r, pair_ids)
        for r in chosen
    ]
    checked = [r for r in reruns if r.rerun is not None]
    return Impact(
        license=summary,
        pairs=len(pair_ids),
        usable_pairs=usable,
        predictions_influenced=len(influenced),
        total_contribution=total_contribution,
        sample_size=len(checked),
        changed=sum(1 for r in checked if r.changed),
        sample=reruns,
        method="the most influenced predictions (by share of score), re-run now on the "
        "same input, candidates, model, k, p and aggregation, without this licence's pairs",
    )


def _rerun(
    sessions: sessionmaker[Session],
    model_of: ModelOf,
    blobs: BlobStore,
    original: Prediction,
    influence: dict[str, Any],
    excluded: frozenset[int],
) -> ImpactedPrediction:
    entry = ImpactedPrediction(
        prediction_id=original.id,
        created_at=original.created_at,
        label_then=original.predicted_label,
        score_then=original.score,
        share_of_score=influence["share_of_score"],
        evidence_pairs=influence["evidence_pairs"],
        rerun=None,
        changed=None,
    )
    if original.task != "classify" or original.input_sha256 is None:
        return entry.model_copy(update={"note": "not a classification with a kept input"})
    try:
        image = blobs.get(original.input_sha256)
    except BlobNotFound:
        return entry.model_copy(update={"note": "the input image was not kept"})
    candidates = Candidates(
        tuple(original.candidates["classes"]), tuple(original.candidates["templates"])
    )
    options = classify.Options(
        k=original.k,
        p=original.p,
        aggregation=original.aggregation or "max",
        method="exact",
        exclude_pairs=excluded,
    )
    try:
        parts = model_of(original.model)
    except (NotFound, Conflict) as exc:
        return entry.model_copy(update={"note": f"not re-run: {exc}"})
    with sessions() as session, session.begin():
        [now] = classify.classify(
            session,
            live=parts.live,
            encoders=parts.encoders,
            images=[(original.input_name or "input", image)],
            candidates=candidates,
            options=options,
            client=None,
            channel="impact",
            record=False,
        )
    rerun = Rerun(label=now.label, score=now.score, model_version=now.model_version)
    return entry.model_copy(
        update={"rerun": rerun, "changed": now.label != original.predicted_label}
    )
