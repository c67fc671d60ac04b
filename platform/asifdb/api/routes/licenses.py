"""`/v1/licenses`: list, create, revoke (reason required), restore, impact."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from asifdb.api.deps import SessionDep, allowed
from asifdb.api.params import NON_BLANK, LicenceId, Name
from asifdb.services import licences
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


@router.get("", summary="Every licence with its status and pair counts")
def list_licenses(
    session: SessionDep, _: Annotated[Principal, Depends(allowed("licenses:read"))]
) -> list[dict[str, Any]]:
    return licences.list_all(session)


@router.post("", status_code=201, summary="Create an active licence")
def create_license(
    body: LicenseCreate,
    session: SessionDep,
    who: Annotated[Principal, Depends(allowed("licenses:write"))],
) -> dict[str, Any]:
    lic = licences.create(
        session, name=body.name, actor=who.name, holder=body.holder, terms_url=body.terms_url
    )
    return {"id": lic.id, "name": lic.name, "status": "active"}


@router.post("/{license_id}/revoke", summary="Revoke: its pairs leave the model at once")
def revoke_license(
    license_id: LicenceId,
    body: Revocation,
    session: SessionDep,
    who: Annotated[Principal, Depends(allowed("licenses:write"))],
) -> dict[str, Any]:
    return licences.revoke(session, licence=license_id, reason=body.reason, actor=who.name)


@router.post("/{license_id}/restore", summary="Restore: its pairs return to the model")
def restore_license(
    license_id: LicenceId,
    session: SessionDep,
    who: Annotated[Principal, Depends(allowed("licenses:write"))],
    body: Restoration | None = None,
) -> dict[str, Any]:
    reason = body.reason if body else None
    return licences.restore(session, licence=license_id, actor=who.name, reason=reason)
