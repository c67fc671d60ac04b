"""`GET /health`: up or not; each part's state for an admin key."""

from typing import Any

from asifdb.schemas.common import Schema


class Health(Schema):
    """`ok` alone without an admin key; with one, each part's state as well."""

    ok: bool
    database: dict[str, Any] | None = None
    migrations: dict[str, Any] | None = None
    broker: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
