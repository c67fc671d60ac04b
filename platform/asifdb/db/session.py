"""Engines and sessions: resolve the database (configured or embedded) and check it is usable."""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SAWarning
from sqlalchemy.orm import Session, sessionmaker

from asifdb.db import embedded, roles
from asifdb.db.roles import Role
from asifdb.errors import ConfigError
from asifdb.settings import Settings


def database_url(settings: Settings, *, role: Role = "app", start_embedded: bool = True) -> str:
    """The URL a component with `role` connects with: configured, or the embedded server's
    (started if asked) as that role's login; only "setup" gets the embedded superuser."""
    if role == "setup" and settings.admin_database_url:
        return normalise_url(settings.admin_database_url)
    if role == "auditor" and settings.auditor_database_url:
        return normalise_url(settings.auditor_database_url)
    if settings.database_url:
        url = normalise_url(settings.database_url)
        if role != "auditor":
            return url
        password = settings.auditor_db_password
        return with_user(url, roles.AUDITOR, password.get_secret_value() if password else None)
    url = embedded.running_url(settings.pgdata)
    if url is None and start_embedded:
        url = embedded.start(settings.pgdata)
    if url is None:
        raise ConfigError("the embedded database is not running: start it with `asifdb up`")
    return url if role == "setup" else with_user(url, roles.login(role), None)


def with_user(url: str, user: str, password: str | None) -> str:
    """`url` with another user (and its password, if it has one)."""
    return make_url(url).set(username=user, password=password).render_as_string(hide_password=False)


def normalise_url(url: str) -> str:
    """Accept `postgres://` and `postgresql://` URLs; use the psycopg 3 driver."""
    try:
        parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    except ArgumentError as exc:
        raise ConfigError(f"DATABASE_URL is not a database URL: {url!r} ({exc})") from exc
    if not parsed.drivername.startswith("postgresql"):
        raise ConfigError(
            f"DATABASE_URL must point at PostgreSQL with pgvector, not {parsed.drivername!r}"
        )
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def make_engine(url: str, **kwargs: object) -> Engine:
    """An engine with pre-ping, so a restarted server does not break a long-lived process."""
    return create_engine(url, pool_pre_ping=True, **kwargs)


def check_reachable(engine: Engine) -> None:
    """Raise ConfigError naming the fix if the database cannot be reached or lacks pgvector."""
    safe = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            available = conn.execute(
                text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
            ).first()
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise ConfigError(
            f"cannot reach the database at {safe}: {reason}. Check DATABASE_URL "
            "(or unset it to use the embedded PostgreSQL)."
        ) from exc
    if available is None:
        raise ConfigError(
            f"the database at {safe} has no pgvector extension: install pgvector "
            "(e.g. the pgvector/pgvector image) or unset DATABASE_URL to use the embedded server."
        )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any error."""
    with factory() as session, session.begin():
        yield session


class SnapshotTooLate(RuntimeError):
    """A query's snapshot was asked for after its transaction had already begun otherwise: a
    bug in the caller (it must open the query's session first), never a user's error."""


def snapshot(session: Session) -> None:
    """The one way a query takes one snapshot for all its reads: the session's transaction is
    REPEATABLE READ, or this raises (SQLAlchemy ignores the level, with only a warning, once the
    transaction has begun; so it is checked here, not assumed)."""
    with warnings.catch_warnings():  # the level read next is the check, not the warning
        warnings.filterwarnings("ignore", "Connection is already established", SAWarning)
        conn = session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    level = conn.exec_driver_sql("SHOW transaction_isolation").scalar_one()
    if level != "repeatable read":
        raise SnapshotTooLate(
            f"the query's transaction began as {level}: take the snapshot before any read"
        )
