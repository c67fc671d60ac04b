"""`/v1/predictions/{id}` (with evidence) and `/v1/licenses/{id}/impact` for auditors."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from asifdb.api.deps import HeavyDep, PlatformDep, SessionDep, allowed
from asifdb.api.params import Id, LicenceId
from asifdb.schemas.licenses import Impact
from asifdb.schemas.predictions import Prediction
from asifdb.services import impact, predictions
from asifdb.services.keys import Principal

router = APIRouter(tags=["provenance"])


@router.get(
    "/v1/predictions/{prediction_id}",
    summary="A prediction with its evidence pairs",
    response_model=Prediction,
)
def get_prediction(
    prediction_id: Id,
    session: SessionDep,
    _: Annotated[Principal, Depends(allowed("predictions:read"))],
    evidence_limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> Prediction:
    return predictions.get(session, prediction_id=prediction_id, evidence_limit=evidence_limit)


@router.get(
    "/v1/licenses/{license_id}/impact",
    summary="Deletion verification: what the licence's pairs carried, re-run without them",
    response_model=Impact,
)
async def licence_impact(
    license_id: LicenceId,
    platform: PlatformDep,
    heavy: HeavyDep,
    _: Annotated[Principal, Depends(allowed("impact:read"))],
    sample: Annotated[int, Query(ge=0, le=200)] = 20,
) -> Impact:
    # It re-runs up to `sample` classifications: heavy work, off the event loop.
    return await heavy.run(
        impact.licence_impact,
        sessions=platform.sessions,
        model_of=platform.model,
        blobs=platform.blobs,
        licence=license_id,
        sample=sample,
    )
