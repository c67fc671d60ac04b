"""`GET /health` and `asifdb status`: up or not; each part's state for an admin key.

A part's fields that do not apply are left unset, and left out of the answer (`Health.wire`):
`error` only on a failure, the parts after the database only when it answers."""

from typing import Any

from asifdb.schemas.base import Schema


class DatabaseState(Schema):
    ok: bool
    url: str | None = None
    server_version: str | None = None
    pgvector: str | None = None
    error: str | None = None


class MigrationsState(Schema):
    ok: bool
    current: str | None
    head: str | None
    fix: str | None


class BrokerState(Schema):
    ok: bool
    kind: str
    url: str
    error: str | None = None


class ModelState(Schema):
    version: int | None
    image_encoder: str | None
    text_encoder: str | None
    usable_pairs: int
    ann_index: str


class Health(Schema):
    """`ok` alone without an admin key; with one, each part's state as well."""

    ok: bool
    database: DatabaseState | None = None
    migrations: MigrationsState | None = None
    broker: BrokerState | None = None
    model: ModelState | None = None

    def wire(self) -> dict[str, Any]:
        """The answer as sent: the parts and fields that were set."""
        return self.model_dump(mode="json", exclude_unset=True)
