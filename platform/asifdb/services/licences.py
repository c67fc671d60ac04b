"""Licence use cases: create, list, look up (revocation and restore live here too)."""

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from asifdb.db.models import License, Pair
from asifdb.errors import Conflict, InvalidInput, NotFound
from asifdb.schemas.licenses import License as LicenseOut
from asifdb.schemas.licenses import LicenseRestored, LicenseRevoked
from asifdb.services import audit, model


def create(
    session: Session,
    *,
    name: str,
    actor: str,
    holder: str | None = None,
    terms_url: str | None = None,
) -> License:
    """A new active licence; names are unique."""
    name = name.strip()
    if not name:
        raise InvalidInput("a licence needs a name")
    licence = License(name=name, holder=holder, terms_url=terms_url, created_by=actor)
    try:
        with session.begin_nested():
            session.add(licence)
            session.flush()
    except IntegrityError:
        raise Conflict(f"a licence named {name!r} already exists") from None
    audit.record(
        session,
        actor=actor,
        action="license.create",
        target_type="license",
        target_id=str(licence.id),
        details={"name": name},
    )
    return licence


def get_by_name(session: Session, *, name: str) -> License:
    licence = session.scalar(select(License).where(License.name == name))
    if licence is None:
        raise NotFound(f"no licence named {name!r}: create it with `asifdb licenses create {name}`")
    return licence


def list_all(session: Session) -> list[LicenseOut]:
    """Every licence with its pair counts (all pairs, and those usable now)."""
    usable = dict(
        session.execute(text("SELECT license_id, count(*) FROM usable_pairs GROUP BY 1")).all()
    )
    total = dict(
        session.execute(
            select(Pair.license_id, func.count())
            .where(Pair.deleted_at.is_(None))
            .group_by(Pair.license_id)
        ).all()
    )
    return [
        LicenseOut(
            id=lic.id,
            name=lic.name,
            holder=lic.holder,
            terms_url=lic.terms_url,
            status=lic.status,
            pairs=total.get(lic.id, 0),
            usable_pairs=usable.get(lic.id, 0),
            revoked_at=lic.revoked_at,
            revoked_by=lic.revoked_by,
            reason=lic.reason,
        )
        for lic in session.scalars(select(License).order_by(License.id))
    ]


def hold_for_adding(session: Session, *, licence_id: int) -> bool:
    """Lock the licence against revocation and restoration until this transaction ends;
    True if pairs added under it now may become usable.

    Adding pairs holds this share lock while it inserts; revoke and restore take the row's
    exclusive lock first. So a revoke either commits before (the batch then sees it here and
    opens no usability) or waits for the batch's commit (and then closes the new pairs too):
    from the commit of a revoke on, no pair of the licence becomes usable.
    """
    status = session.scalar(
        select(License.status).where(License.id == licence_id).with_for_update(read=True)
    )
    return status == "active"


def _locked(session: Session, name_or_id: str | int) -> License:
    column = License.id if isinstance(name_or_id, int) else License.name
    licence = session.scalar(select(License).where(column == name_or_id).with_for_update())
    if licence is None:
        raise NotFound(f"no licence {name_or_id!r}")
    return licence


def _pair_ids(session: Session, licence_id: int, *, usable: bool) -> list[int]:
    if usable:
        query = text("SELECT id FROM usable_pairs WHERE license_id = :l")
        return list(session.execute(query, {"l": licence_id}).scalars())
    return list(
        session.scalars(
            select(Pair.id).where(Pair.license_id == licence_id, Pair.deleted_at.is_(None))
        )
    )


def revoke(session: Session, *, licence: str | int, reason: str, actor: str) -> LicenseRevoked:
    """Revoke a licence: its pairs leave the model in this same transaction (a new version)."""
    if not reason or not reason.strip():
        raise InvalidInput("a revocation needs a reason (it is kept in the audit log)")
    lic = _locked(session, licence)
    if lic.status == "revoked":
        raise Conflict(f"licence {lic.name!r} is already revoked (since {lic.revoked_at})")
    if lic.status == "erased":
        raise Conflict(f"licence {lic.name!r} is erased: its pairs are gone for good")
    leaving = _pair_ids(session, lic.id, usable=True)
    lic.status, lic.revoked_at, lic.revoked_by, lic.reason = "revoked", func.now(), actor, reason
    session.flush()
    version = model.change_usable(
        session,
        change=f"revoke licence {lic.name}: -{len(leaving)} pairs",
        leaving=leaving,
        always=True,
    )
    assert version is not None
    audit.record(
        session,
        actor=actor,
        action="license.revoke",
        target_type="license",
        target_id=str(lic.id),
        reason=reason,
        model_version=version,
        details={"name": lic.name, "pairs": len(leaving)},
    )
    return LicenseRevoked(
        license=lic.name, status="revoked", pairs_removed=len(leaving), model_version=version
    )


def restore(
    session: Session, *, licence: str | int, actor: str, reason: str | None = None
) -> LicenseRestored:
    """Restore a revoked licence: its pairs return to the model in this transaction."""
    lic = _locked(session, licence)
    if lic.status == "active":
        raise Conflict(f"licence {lic.name!r} is active: nothing to restore")
    if lic.status == "erased":
        raise Conflict(
            f"licence {lic.name!r} is erased: erasure is irreversible, its pairs cannot return"
        )
    lic.status, lic.revoked_at, lic.revoked_by, lic.reason = "active", None, None, None
    session.flush()
    returning = _pair_ids(session, lic.id, usable=True)
    version = model.change_usable(
        session,
        change=f"restore licence {lic.name}: +{len(returning)} pairs",
        returning=returning,
        always=True,
    )
    assert version is not None
    audit.record(
        session,
        actor=actor,
        action="license.restore",
        target_type="license",
        target_id=str(lic.id),
        reason=reason,
        model_version=version,
        details={"name": lic.name, "pairs": len(returning)},
    )
    return LicenseRestored(
        license=lic.name, status="active", pairs_restored=len(returning), model_version=version
    )
