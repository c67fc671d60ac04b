"""API keys: create (shown once, stored hashed), authenticate, and what each role may do."""

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from asifdb.db.models import ROLES, ApiKey
from asifdb.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from asifdb.schemas.keys import ApiKeyOut
from asifdb.services import audit

_APP = {"classify", "retrieve", "licenses:read", "labelsets:read"}
_ANNOTATOR = _APP | {"pairs:add", "pairs:read", "jobs:read", "labelsets:write"}
_STEWARD = _ANNOTATOR | {"licenses:write", "licenses:erase", "pairs:delete", "impact:read"}
_AUDITOR = {
    "predictions:read",
    "audit:read",
    "licenses:read",
    "pairs:read",
    "jobs:read",
    "impact:read",
    "labelsets:read",
}
PERMISSIONS: dict[str, frozenset[str]] = {
    "app": frozenset(_APP),
    "annotator": frozenset(_ANNOTATOR),
    "steward": frozenset(_STEWARD),
    "auditor": frozenset(_AUDITOR),
    "admin": frozenset(_STEWARD | _AUDITOR | {"keys:write", "status:read"}),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (recorded as the actor) and its role."""

    name: str
    role: str
    key_id: int | None = None

    def allows(self, permission: str) -> bool:
        return permission in PERMISSIONS[self.role]

    def require(self, permission: str) -> None:
        if not self.allows(permission):
            raise Forbidden(
                f"the {self.role} role may not {permission}: use a key whose role "
                f"allows it ({', '.join(r for r in ROLES if permission in PERMISSIONS[r])})"
            )


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(session: Session, *, name: str, role: str, actor: str) -> str:
    """A new key; the plain key is returned once and never stored."""
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if not name.strip():
        raise InvalidInput("a key needs a name (it is recorded as the actor of what it does)")
    prefix = secrets.token_hex(4)
    key = f"asif_{prefix}_{secrets.token_urlsafe(32)}"
    try:
        with session.begin_nested():
            session.add(
                ApiKey(
                    name=name.strip(),
                    prefix=prefix,
                    key_hash=_hash(key),
                    role=role,
                    created_by=actor,
                )
            )
            session.flush()
    except IntegrityError:
        raise Conflict(f"a key named {name!r} already exists") from None
    audit.record(
        session,
        actor=actor,
        action="key.create",
        target_type="api_key",
        target_id=name,
        details={"role": role, "prefix": prefix},
    )
    return key


def revoke(session: Session, *, name: str, actor: str) -> None:
    done = session.execute(
        update(ApiKey)
        .where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    if done.rowcount == 0:
        raise NotFound(f"no active key named {name!r}")
    audit.record(session, actor=actor, action="key.revoke", target_type="api_key", target_id=name)


def authenticate(session: Session, *, key: str | None) -> Principal:
    """The principal of a presented key; Unauthorized if missing, unknown or revoked."""
    if not key:
        raise Unauthorized("missing API key: send it in the X-API-Key header")
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == _hash(key)))
    if row is None or row.revoked_at is not None:
        raise Unauthorized("invalid or revoked API key")
    return Principal(name=row.name, role=row.role, key_id=row.id)


def list_all(session: Session) -> list[ApiKeyOut]:
    """Every key's name, role and state, oldest first (never the key)."""
    return [
        ApiKeyOut(
            name=k.name,
            role=k.role,
            prefix=k.prefix,
            created_at=k.created_at,
            revoked_at=k.revoked_at,
        )
        for k in session.scalars(select(ApiKey).order_by(ApiKey.id))
    ]
