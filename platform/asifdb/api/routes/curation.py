"""`/v1/curation`: mismatched captions, near-duplicate groups, pair value on a labelled folder,
the review queue; mark, reject, restore, revoke. Lists: steward/auditor/admin; acts: steward/admin.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from asifdb.api.deps import PlatformDep, SessionDep, allowed
from asifdb.api.params import MAX_ID, BodyId, Name, Offset, ServerPath, Template
from asifdb.services import curation, labelsets
from asifdb.services.keys import Principal

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
    k: int | None = Field(default=None, ge=1, le=10_000, description="Default: FIT_K.")
    p: float | None = Field(default=None, ge=1, le=64, description="Default: the space's FIT_P.")


class DuplicateRefresh(BaseModel):
    threshold: float = Field(default=curation.DUPLICATE_THRESHOLD, gt=0, le=1)


class ValueRequest(BaseModel):
    folder: ServerPath = Field(
        description="An absolute path on the server under SOURCE_ROOTS (403 otherwise): a "
        "folder with one sub-folder of images a class (422 if it is not one)."
    )
    templates: (
        Annotated[list[Template], Field(max_length=labelsets.MAX_TEMPLATES)] | Name | None
    ) = Field(
        default=None,
        description="A template set name (default, cifar, imagenet) or a list of templates.",
    )
    classnames: ServerPath | None = Field(
        default=None, description="A file on the server of `folder<TAB>name` lines."
    )
    limit_per_class: int | None = Field(default=None, ge=1, le=1_000_000)
    counts: list[Annotated[int, Field(ge=0, le=MAX_ID)]] = Field(
        default=list(curation.WHAT_IF_COUNTS),
        max_length=20,
        description="What if the N most harmful pairs were excluded: each N.",
    )
    top: int = Field(default=20, ge=1, le=curation.MAX_PAGE)


class PairAction(BaseModel):
    pair_ids: list[BodyId] = Field(min_length=1, max_length=10_000)
    reason: str | None = Field(default=None, max_length=2000)


@router.post("/fit", summary="Score caption fit, leave-one-out (new pairs, or all with full)")
def refresh_fit(
    body: FitRefresh, session: SessionDep, platform: PlatformDep, _: Actor
) -> dict[str, Any]:
    return curation.refresh_fit(
        session,
        live=platform.live,
        k=body.k,
        p=body.p,
        full=body.full,
    )


@router.get("/mismatches", summary="Pairs whose caption fits their image worst, lowest first")
def mismatches(
    session: SessionDep, _: Reader, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    return curation.mismatches(session, limit=limit, offset=offset)


@router.post("/duplicates", summary="Group near-identical images again")
def refresh_duplicates(
    body: DuplicateRefresh, session: SessionDep, platform: PlatformDep, _: Actor
) -> dict[str, Any]:
    return curation.refresh_duplicates(session, live=platform.live, threshold=body.threshold)


@router.get("/duplicates", summary="Near-duplicate groups with a suggested keeper")
def duplicates(
    session: SessionDep, _: Reader, limit: Limit = 20, offset: Offset = 0
) -> dict[str, Any]:
    return curation.duplicates(session, limit=limit, offset=offset)


@router.post("/value", summary="Pair value on a labelled folder and the what-if (a dry run)")
def value(
    body: ValueRequest, session: SessionDep, platform: PlatformDep, _: Reader
) -> dict[str, Any]:
    settings = platform.settings
    return curation.pair_values(
        session,
        live=platform.live,
        encoders=platform.encoders,
        folder=body.folder,
        roots=settings.source_roots,
        templates=body.templates,
        classnames=body.classnames,
        max_images=settings.max_value_images,
        k=platform.settings.k,
        p=platform.settings.p,
        limit_per_class=body.limit_per_class,
        counts=tuple(body.counts),
        top=body.top,
    )


@router.get("/reviews", summary="The review queue")
def reviews(
    session: SessionDep, _: Reader, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    return curation.reviews(session, limit=limit, offset=offset)


@router.post("/mark", summary="Mark pairs for review")
def mark(body: PairAction, session: SessionDep, who: Actor) -> dict[str, Any]:
    return curation.mark(session, pair_ids=body.pair_ids, actor=who.name, reason=body.reason)


@router.post("/unmark", summary="Take pairs off the review queue")
def unmark(body: PairAction, session: SessionDep, who: Actor) -> dict[str, Any]:
    return curation.unmark(session, pair_ids=body.pair_ids, actor=who.name)


@router.post("/reject", summary="Reject pairs (reason required): they leave the model now")
def reject(body: PairAction, session: SessionDep, who: Actor) -> dict[str, Any]:
    return curation.reject(session, pair_ids=body.pair_ids, actor=who.name, reason=body.reason)


@router.post("/restore", summary="Undo a rejection: the pairs return to the model")
def restore(body: PairAction, session: SessionDep, who: Actor) -> dict[str, Any]:
    return curation.restore(session, pair_ids=body.pair_ids, actor=who.name, reason=body.reason)


@router.post("/revoke", summary="Revoke the licences of these pairs (reason required)")
def revoke(
    body: PairAction,
    session: SessionDep,
    who: Actor,
    _: Annotated[Principal, Depends(allowed("licenses:write"))],
) -> dict[str, Any]:
    return curation.revoke_licences(
        session, pair_ids=body.pair_ids, actor=who.name, reason=body.reason
    )
