"""`POST /v1/classify`: zero-shot classification of uploaded images, with its evidence."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, UploadFile

from asifdb.api.deps import PlatformDep, allowed
from asifdb.errors import InvalidInput, TooLarge
from asifdb.services import classify as classify_service
from asifdb.services import labelsets
from asifdb.services.classify import Options
from asifdb.services.keys import Principal

router = APIRouter(tags=["classify"])

MAX_IMAGE_BYTES = 20 * 1024 * 1024


@router.post("/v1/classify", summary="Classify images among candidate labels, with evidence")
async def classify(
    platform: PlatformDep,
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
    k: Annotated[int | None, Form(ge=1, le=10_000)] = None,
    p: Annotated[float | None, Form(ge=1, le=64)] = None,
    aggregation: Annotated[Literal["max", "mean"], Form()] = "max",
    method: Annotated[Literal["exact", "ann", "auto"], Form()] = "auto",
) -> list[dict[str, Any]]:
    files = []
    for upload in images:
        data = await upload.read(MAX_IMAGE_BYTES + 1)
        if len(data) > MAX_IMAGE_BYTES:
            raise TooLarge(f"{upload.filename} is over {MAX_IMAGE_BYTES} bytes")
        files.append((upload.filename or "image", data))
    settings = platform.settings
    options = Options(k=k or settings.k, p=p or settings.p, aggregation=aggregation, method=method)
    with platform.sessions.begin() as session:
        if label_set and labels:
            raise InvalidInput("pass labels or a label_set, not both")
        candidates = (
            labelsets.get(session, name=label_set)
            if label_set
            else labelsets.check(labels or [], template or templates)
        )
        return classify_service.classify(
            session,
            live=platform.live,
            encoders=platform.encoders,
            images=files,
            candidates=candidates,
            options=options,
            client=who.name,
            channel="api",
            blobs=platform.blobs,
        )
