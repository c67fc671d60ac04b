"""`POST /v1/retrieve`: image to captions, text to images, over the collection or candidates.

Texts and images are held to their limits, then the work runs off the event loop (at most
API_HEAVY_CONCURRENCY requests at once).
"""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, UploadFile

from asifdb.api.deps import HeavyDep, LimitsDep, PlatformDep, allowed
from asifdb.api.params import ModelName
from asifdb.context import Platform
from asifdb.limits import RequestLimits
from asifdb.schemas.predictions import Retrieval
from asifdb.services import retrieve as retrieve_service
from asifdb.services.classify import K_RANGE, P_RANGE, Options
from asifdb.services.keys import Principal

router = APIRouter(tags=["retrieve"])


@router.post(
    "/v1/retrieve",
    summary="Retrieve captions for an image, or images for a text",
    response_model=Retrieval,
)
async def retrieve(
    platform: PlatformDep,
    limits: LimitsDep,
    heavy: HeavyDep,
    who: Annotated[Principal, Depends(allowed("retrieve"))],
    direction: Annotated[Literal["image_to_text", "text_to_image"], Form()],
    image: Annotated[UploadFile | None, File(description="The query (image_to_text).")] = None,
    text: Annotated[str | None, Form(description="The query (text_to_image).")] = None,
    candidate_texts: Annotated[list[str] | None, Form(description="Captions to rank.")] = None,
    candidate_images: Annotated[
        list[UploadFile] | None, File(description="Images to rank.")
    ] = None,
    top: Annotated[int, Form(ge=1, le=retrieve_service.MAX_TOP)] = 10,
    k: Annotated[int | None, Form(ge=K_RANGE[0], le=K_RANGE[1])] = None,
    p: Annotated[float | None, Form(ge=P_RANGE[0], le=P_RANGE[1])] = None,
    model: ModelName = None,
) -> Retrieval:
    limits.check_texts("text", [text] if text else [])
    limits.check_texts("candidate_texts", candidate_texts or [], most="candidate_texts")
    asked = {"k": k, "p": p}
    Options.of(platform.settings, **asked)  # checked before any work is queued
    return await heavy.run(
        _retrieve,
        platform=platform,
        limits=limits,
        who=who,
        direction=direction,
        image=image,
        text=text,
        candidate_texts=candidate_texts,
        candidate_images=candidate_images or [],
        asked=asked,
        top=top,
        model=model,
    )


def _retrieve(
    *,
    platform: Platform,
    limits: RequestLimits,
    who: Principal,
    direction: Literal["image_to_text", "text_to_image"],
    image: UploadFile | None,
    text: str | None,
    candidate_texts: list[str] | None,
    candidate_images: list[UploadFile],
    asked: dict[str, Any],
    top: int,
    model: str | None,
) -> Retrieval:
    [query_image] = limits.read_images([image], field="image", most="images") if image else [None]
    given_images = limits.read_images(
        candidate_images, field="candidate_images", most="candidate_images"
    )
    handle = platform.model(model)
    options = Options.of(platform.settings, **asked, model=handle.ref)
    with platform.sessions.begin() as session:
        return retrieve_service.retrieve(
            session,
            live=handle.live,
            encoders=handle.encoders,
            direction=direction,
            image=query_image,
            query_text=text,
            candidate_texts=candidate_texts,
            candidate_images=given_images or None,
            options=options,
            top=top,
            client=who.name,
            channel="api",
        )
