"""Read-only SQL for auditors: one statement, in a read-only transaction, with a time limit."""

from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Engine, text

from asifdb.db import roles
from asifdb.errors import ConfigError, InvalidInput

MAX_ROWS = 10_000


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
