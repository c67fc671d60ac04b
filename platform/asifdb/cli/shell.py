"""What every command shares: the consoles, the actor recorded for CLI acts, and how a command
opens the platform: `asifdb.context.platform_at_head` (or `session_at_head`, one transaction on
it) for every command that reads or writes, `platform_as` only for those that run before the
schema is known (`db upgrade`, `db check`, `status`, `sql` as the auditor role)."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from sqlalchemy.orm import Session

from asifdb.context import Platform, platform_at_head
from asifdb.db import schema
from asifdb.db.roles import Role
from asifdb.errors import InvalidInput
from asifdb.settings import get_settings

CLI_ACTOR = "cli"

console = Console(soft_wrap=True)

err = Console(stderr=True, soft_wrap=True)


def platform_as(role: Role = "app") -> Platform:
    """The configured platform connected as `role`, its schema not checked; the caller closes."""
    return Platform(get_settings(), role=role)


def upgrade(platform: Platform) -> str:
    """Migrations and the role matrix, with the login roles' passwords when configured."""
    settings = platform.settings
    return schema.upgrade(
        platform.engine,
        app_password=_secret(settings.app_db_password),
        auditor_password=_secret(settings.auditor_db_password),
    )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value else None


@contextmanager
def session_at_head() -> Iterator[Session]:
    """A session in one transaction on a database at head; the server stops if we started it."""
    with platform_at_head() as platform, platform.sessions.begin() as session:
        yield session


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return (
        value
        if isinstance(value, str | int | float | bool | type(None) | list | dict)
        else str(value)
    )


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
