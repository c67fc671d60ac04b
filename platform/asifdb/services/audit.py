"""The audit log: the one way an event is recorded (`record`, `record_each`: the database chains
each event's hash, migration 0009, and no role may change or remove one), and read-only SQL
for auditors (one statement, in a read-only transaction, with a time limit)."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from asifdb.db import roles
from asifdb.db.models import AuditEvent
from asifdb.errors import ConfigError, InvalidInput

MAX_ROWS = 10_000


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | None = None,
    reason: str | None = None,
    model_version: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """One event, in the caller's transaction (it is logged only if the change commits).
    `details` never holds a licence's content (captions, images): the log is permanent."""
    session.add(
        AuditEvent(
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            reason=reason,
            model_version=model_version,
            details=details,
        )
    )


def record_each(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_ids: Iterable[int | str],
    reason: str | None = None,
    model_version: int | None = None,
) -> None:
    """The same event for each of many targets (pairs rejected together): one statement."""
    session.execute(
        text(
            "INSERT INTO audit_events (actor, action, target_type, target_id, reason, "
            "model_version) SELECT :actor, :action, :type, unnest(CAST(:ids AS text[])), "
            ":reason, :v"
        ),
        {
            "actor": actor,
            "action": action,
            "type": target_type,
            "ids": [str(i) for i in target_ids],
            "reason": reason,
            "v": model_version,
        },
    )


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool


def run_readonly_sql(
    *, engine: Engine, query: str, max_rows: int = MAX_ROWS, timeout_ms: int = 30_000
) -> QueryResult:
    """Run one SQL statement that cannot write; at most `max_rows` rows come back."""
    query = query.strip().rstrip(";").strip()
    if not query:
        raise InvalidInput("empty query: pass one SQL statement, e.g. SELECT * FROM usable_pairs")
    with engine.connect() as conn:
        # The read-only transaction is a courtesy; the guarantee is the role's privileges.
        too_much = roles.more_than_auditor(conn)
        if too_much is not None:
            raise ConfigError(
                f"`asifdb sql` must connect as a read-only auditor role, but {too_much}: set "
                f"AUDITOR_DATABASE_URL to a URL for {roles.AUDITOR} (created by `asifdb db "
                "upgrade`), or unset DATABASE_URL to use the embedded server's"
            )
        conn.execute(text("SET TRANSACTION READ ONLY"))
        conn.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
        raw = conn.connection.dbapi_connection
        try:
            # A prepared statement goes through the extended protocol, which accepts exactly one
            # statement: "SELECT 1; COMMIT; DELETE ..." is refused, not run in pieces.
            with raw.cursor() as cursor:
                cursor.execute(query, prepare=True)
                if cursor.description is None:
                    raise InvalidInput("the statement returned no rows: only queries are allowed")
                columns = [c.name for c in cursor.description]
                rows = cursor.fetchmany(max_rows + 1)
        except psycopg.Error as exc:
            message = str(exc).strip().splitlines()[0]
            raise InvalidInput(f"query refused: {message}") from exc
        finally:
            conn.rollback()
    return QueryResult(columns, [tuple(r) for r in rows[:max_rows]], len(rows) > max_rows)
