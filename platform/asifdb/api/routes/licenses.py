"""`/v1/licenses`: list, create, revoke (reason required), restore, erase (with its report)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from asifdb.api.deps import HeavyDep, PlatformDep, SessionDep, allowed
from asifdb.api.params import NON_BLANK, LicenceId, Name
from asifdb.schemas.licenses import (
    ErasurePreview,
    ErasureReport,
    License,
    LicenseCreated,
    LicenseRestored,
    LicenseRevoked,
)
from asifdb.services import erasure, licences
from asifdb.services.keys import Principal

router = APIRouter(prefix="/v1/licenses", tags=["licenses"])


class LicenseCreate(BaseModel):
    name: Name
    holder: str | None = Field(default=None, max_length=500)
    terms_url: str | None = Field(default=None, max_length=2000)


class Revocation(BaseModel):
    reason: str = Field(
        min_length=1, max_length=2000, pattern=NON_BLANK, description="Kept in the audit log."
    )


class Restoration(BaseModel):
    reason: str | None = Field(default=None, max_length=2000)


class ErasureRequest(BaseModel):
    reason: str = Field(
        min_length=1, max_length=2000, pattern=NON_BLANK, description="Kept in the audit log."
    )
    confirm: Name = Field(description="The licence's name, typed again: erasure is irreversible.")


@router.get("", summary="Every licence with its status and pair counts")
def list_licenses(
    session: SessionDep, _: Annotated[Principal, Depends(allowed("licenses:read"))]
) -> list[License]:
    return licences.list_all(session)


@router.post("", status_code=201, summary="Create an active licence")
def create_license(
    body: LicenseCreate,
    session: SessionDep,
    who: Annotated[Principal, Depends(allowed("licenses:write"))],
) -> LicenseCreated:
    lic = licences.create(
        session, name=body.name, actor=who.name, holder=body.holder, terms_url=body.terms_url
    )
    return LicenseCreated(id=lic.id, name=lic.name, status="active")


@router.post("/{license_id}/revoke", summary="Revoke: its pairs leave the model at once")
def revoke_license(
    license_id: LicenceId,
    body: Revocation,
    session: SessionDep,
    who: Annotated[Principal, Depends(allowed("licenses:write"))],
) -> LicenseRevoked:
    return licences.revoke(session, licence=license_id, reason=body.reason, actor=who.name)


@router.post("/{license_id}/restore", summary="Restore: its pairs return to the model")
def restore_license(
    license_id: LicenceId,
    session: SessionDep,
    who: Annotated[Principal, Depends(allowed("licenses:write"))],
    body: Restoration | None = None,
) -> LicenseRestored:
    reason = body.reason if body else None
    return licences.restore(session, licence=license_id, actor=who.name, reason=reason)


@router.get(
    "/{license_id}/erasure-preview",
    summary="What erasing the licence would remove",
)
def erasure_preview(
    license_id: LicenceId,
    session: SessionDep,
    _: Annotated[Principal, Depends(allowed("licenses:erase"))],
) -> ErasurePreview:
    return erasure.preview(session, licence=license_id)


@router.post(
    "/{license_id}/erase",
    summary="Erase a revoked licence's data for good, with the report that checks it is gone",
)
async def erase_license(
    license_id: LicenceId,
    body: ErasureRequest,
    platform: PlatformDep,
    heavy: HeavyDep,
    who: Annotated[Principal, Depends(allowed("licenses:erase"))],
) -> ErasureReport:
    report = await heavy.run(
        _erase, platform=platform, licence=license_id, body=body, actor=who.name
    )
    return report


def _erase(
    *, platform: Any, licence: int, body: ErasureRequest, actor: str
) -> erasure.ErasureReport:
    return erasure.erase_on(
        platform, licence=licence, reason=body.reason, actor=actor, confirm=body.confirm
    )


@router.get(
    "/{license_id}/erasure-report",
    summary="The stored report of the licence's erasure",
)
def erasure_report(
    license_id: LicenceId,
    session: SessionDep,
    _: Annotated[Principal, Depends(allowed("licenses:read"))],
) -> ErasureReport:
    return erasure.report(session, licence=license_id)
