"""`POST /v1/classify`: zero-shot classification of uploaded images, with its evidence.

The work (decoding, encoding, scoring, recording) runs off the event loop, at most
API_HEAVY_CONCURRENCY requests at once; images, labels and templates are held to their limits
before any of it starts.
"""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, UploadFile

from asifdb.api.deps import HeavyDep, LimitsDep, PlatformDep, allowed
from asifdb.api.params import ModelName
from asifdb.context import Platform
from asifdb.limits import RequestLimits
from asifdb.schemas.predictions import Classification
from asifdb.services import classify as classify_service
from asifdb.services import labelsets
from asifdb.services.classify import K_RANGE, P_RANGE, Options
from asifdb.services.keys import Principal

router = APIRouter(tags=["classify"])


@router.post(
    "/v1/classify",
    summary="Classify images among candidate labels, with evidence",
    response_model=list[Classification],
)
async def classify(
    platform: PlatformDep,
    limits: LimitsDep,
    heavy: HeavyDep,
    who: Annotated[Principal, Depends(allowed("classify"))],
    images: Annotated[list[UploadFile], File(min_length=1, description="One or more images.")],
    labels: Annotated[list[str] | None, Form(description="Candidate classes.")] = None,
    label_set: Annotated[str | None, Form(description="Or: a stored label set.")] = None,
    templates: Annotated[
        str | None, Form(description="Template set: default, cifar or imagenet.")
    ] = None,
    template: Annotated[
        list[str] | None, Form(description="Or: your own templates, each with {}.")
    ] = None,
    k: Annotated[int | None, Form(ge=K_RANGE[0], le=K_RANGE[1])] = None,
    p: Annotated[float | None, Form(ge=P_RANGE[0], le=P_RANGE[1])] = None,
    aggregation: Annotated[Literal["max", "mean"], Form()] = "max",
    method: Annotated[Literal["exact", "ann", "ivf", "auto"], Form()] = "auto",
    model: ModelName = None,
) -> list[Classification]:
    asked = {"k": k, "p": p, "aggregation": aggregation, "method": method}
    Options.of(platform.settings, **asked)  # checked before any work is queued
    return await heavy.run(
        _classify,
        platform=platform,
        limits=limits,
        who=who,
        images=images,
        labels=labels,
        label_set=label_set,
        templates=template or templates,
        asked=asked,
        model=model,
    )


def _classify(
    *,
    platform: Platform,
    limits: RequestLimits,
    who: Principal,
    images: list[UploadFile],
    labels: list[str] | None,
    label_set: str | None,
    templates: list[str] | str | None,
    asked: dict[str, Any],
    model: str | None,
) -> list[Classification]:
    files = limits.read_images(images, field="images", most="images")
    handle = platform.model(model)
    options = Options.of(platform.settings, **asked, model=handle.ref)
    with platform.sessions() as session:  # read before the query's own snapshot begins
        candidates = labelsets.candidates(
            session, labels=labels, label_set=label_set, templates=templates
        )
    limits.check_candidates(candidates.classes, candidates.templates)
    with platform.sessions.begin() as session:
        return classify_service.classify(
            session,
            live=handle.live,
            encoders=handle.encoders,
            images=files,
            candidates=candidates,
            options=options,
            client=who.name,
            channel="api",
            blobs=platform.blobs,
        )
