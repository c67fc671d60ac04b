"""API keys as `asifdb keys list` shows them: never the key, only its prefix."""

from datetime import datetime

from asifdb.schemas.base import Schema


class ApiKeyOut(Schema):
    name: str
    role: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
