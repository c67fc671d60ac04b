"""`/v1/curation`: mismatched captions, near-duplicate groups, pair value on uploaded labelled
images, the review queue; mark, reject, restore, revoke. Lists: steward/auditor/admin; acts:
steward/admin. No route takes a server path.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from pydantic import BaseModel, Field

from asifdb.api.deps import PlatformDep, SessionDep, allowed
from asifdb.api.params import MAX_ID, BodyId, ModelName, Offset
from asifdb.errors import InvalidInput, TooLarge
from asifdb.schemas.curation import (
    Duplicates,
    DuplicatesRefreshed,
    FitRefreshed,
    LicensesRevoked,
    Marked,
    Mismatches,
    PairValues,
    Rejected,
    Restored,
    Reviews,
    Unmarked,
)
from asifdb.services import curation, evaluation
from asifdb.services.classify import K_RANGE, P_RANGE, Options
from asifdb.services.keys import Principal
from asifdb.services.uploads import UploadLimits

router = APIRouter(prefix="/v1/curation", tags=["curation"])

# Reading the lists needs what the steward, auditor and admin roles share; acting needs what
# only the steward and admin roles carry.
_READ = "impact:read"
_ACT = "pairs:delete"
Reader = Annotated[Principal, Depends(allowed(_READ))]
Actor = Annotated[Principal, Depends(allowed(_ACT))]
Limit = Annotated[int, Query(ge=1, le=curation.MAX_PAGE, description="Rows to return.")]


class FitRefresh(BaseModel):
    full: bool = Field(default=False, description="Score every usable pair again.")
    k: int | None = Field(default=None, ge=K_RANGE[0], le=K_RANGE[1], description="Default: FIT_K.")
    p: float | None = Field(
        default=None, ge=P_RANGE[0], le=P_RANGE[1], description="Default: the space's FIT_P."
    )


class DuplicateRefresh(BaseModel):
    threshold: float = Field(default=curation.DUPLICATE_THRESHOLD, gt=0, le=1)


class PairAction(BaseModel):
    pair_ids: list[BodyId] = Field(min_length=1, max_length=10_000)
    reason: str | None = Field(default=None, max_length=2000)


@router.post(
    "/fit",
    summary="Score caption fit, leave-one-out (new pairs, or all with full)",
    response_model=FitRefreshed,
)
def refresh_fit(
    body: FitRefresh, session: SessionDep, platform: PlatformDep, _: Actor
) -> FitRefreshed:
    return curation.refresh_fit(
        session,
        live=platform.live,
        k=body.k,
        p=body.p,
        full=body.full,
    )


@router.get(
    "/mismatches",
    summary="Pairs whose caption fits their image worst, lowest first",
    response_model=Mismatches,
)
def mismatches(session: SessionDep, _: Reader, limit: Limit = 50, offset: Offset = 0) -> Mismatches:
    return curation.mismatches(session, limit=limit, offset=offset)


@router.post(
    "/duplicates", summary="Group near-identical images again", response_model=DuplicatesRefreshed
)
def refresh_duplicates(
    body: DuplicateRefresh, session: SessionDep, platform: PlatformDep, _: Actor
) -> DuplicatesRefreshed:
    return curation.refresh_duplicates(session, live=platform.live, threshold=body.threshold)


@router.get(
    "/duplicates",
    summary="Near-duplicate groups with a suggested keeper",
    response_model=Duplicates,
)
def duplicates(session: SessionDep, _: Reader, limit: Limit = 20, offset: Offset = 0) -> Duplicates:
    return curation.duplicates(session, limit=limit, offset=offset)


@router.post(
    "/value",
    summary="Pair value on uploaded labelled images, and the what-if (dry run)",
    response_model=PairValues,
)
def value(
    session: SessionDep,
    platform: PlatformDep,
    _: Reader,
    images: Annotated[
        list[UploadFile] | None,
        File(description="Labelled images (at most MAX_VALUE_IMAGES), with `classes`."),
    ] = None,
    classes: Annotated[
        list[str] | None, Form(description="Each image's class name, in their order.")
    ] = None,
    archive: Annotated[
        UploadFile | None, File(description="Or: a zip of class folders, <class>/<image>.")
    ] = None,
    templates: Annotated[
        str | None, Form(description="Template set: default, cifar or imagenet.")
    ] = None,
    template: Annotated[
        list[str] | None, Form(description="Or: your own templates, each with {}.")
    ] = None,
    counts: Annotated[
        list[Annotated[int, Field(ge=0, le=MAX_ID)]] | None,
        Form(max_length=20, description="What if the N most harmful pairs were excluded."),
    ] = None,
    top: Annotated[int, Form(ge=1, le=curation.MAX_PAGE)] = 20,
    model: ModelName = None,
) -> PairValues:
    settings = platform.settings
    handle = platform.model(model)
    most = settings.api_max_image_bytes
    if (archive is None) == (images is None):
        raise InvalidInput("send either images (with their classes) or an archive")

    def value_of(labelled: evaluation.Labelled) -> PairValues:
        return curation.pair_values(
            session,
            live=handle.live,
            encoders=handle.encoders,
            labelled=labelled,
            templates=template or templates,
            options=Options.of(settings, model=handle.ref),
            counts=tuple(curation.WHAT_IF_COUNTS if counts is None else counts),
            top=top,
        )

    if archive is not None:
        limits = UploadLimits(
            max_files=settings.max_value_images,
            max_file_bytes=most,
            max_total_bytes=settings.api_max_upload_bytes,
        )
        with evaluation.labelled_archive(
            archive.file.read(settings.api_max_upload_bytes + 1),
            uploads_dir=settings.data_dir / "uploads",
            max_images=settings.max_value_images,
            limits=limits,
        ) as labelled:
            return value_of(labelled)
    files = []
    for upload in images or []:
        data = upload.file.read(most + 1)
        if len(data) > most:
            raise TooLarge(f"images: one is over {most} bytes (API_MAX_IMAGE_BYTES)")
        files.append((upload.filename or "image", data))
    return value_of(
        evaluation.labelled_uploads(files, classes or [], max_images=settings.max_value_images)
    )


@router.get("/reviews", summary="The review queue", response_model=Reviews)
def reviews(session: SessionDep, _: Reader, limit: Limit = 50, offset: Offset = 0) -> Reviews:
    return curation.reviews(session, limit=limit, offset=offset)


@router.post("/mark", summary="Mark pairs for review", response_model=Marked)
def mark(body: PairAction, session: SessionDep, who: Actor) -> Marked:
    return curation.mark(session, pair_ids=body.pair_ids, actor=who.name, reason=body.reason)


@router.post("/unmark", summary="Take pairs off the review queue", response_model=Unmarked)
def unmark(body: PairAction, session: SessionDep, who: Actor) -> Unmarked:
    return curation.unmark(session, pair_ids=body.pair_ids, actor=who.name)


@router.post(
    "/reject",
    summary="Reject pairs (reason required): they leave the model now",
    response_model=Rejected,
)
def reject(body: PairAction, session: SessionDep, who: Actor) -> Rejected:
    return curation.reject(session, pair_ids=body.pair_ids, actor=who.name, reason=body.reason)


@router.post(
    "/restore", summary="Undo a rejection: the pairs return to the model", response_model=Restored
)
def restore(body: PairAction, session: SessionDep, who: Actor) -> Restored:
    return curation.restore(session, pair_ids=body.pair_ids, actor=who.name, reason=body.reason)


@router.post(
    "/revoke",
    summary="Revoke the licences of these pairs (reason required)",
    response_model=LicensesRevoked,
)
def revoke(
    body: PairAction,
    session: SessionDep,
    who: Actor,
    _: Annotated[Principal, Depends(allowed("licenses:write"))],
) -> LicensesRevoked:
    return curation.revoke_licences(
        session, pair_ids=body.pair_ids, actor=who.name, reason=body.reason
    )
