"""Shared fixtures: one real embedded PostgreSQL per test run, a fresh migrated database per test.

Databases are cloned from a migrated template, so each test starts from an empty schema at
head in about 100 ms. Nothing here fakes the database.
"""

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Nothing the suite runs may touch the user's data folder (the default `.asifdb`): every
# process it starts, and this one, default to a temporary one, removed at the end. The marker
# lets scripts/test find any process the run left behind.
_RUN_DATA = Path(tempfile.mkdtemp(prefix="asifdb-test-data-"))
os.environ["DATA_DIR"] = str(_RUN_DATA)
os.environ["ASIFDB_TEST_RUN"] = str(_RUN_DATA)

from asifdb.db import embedded, roles, schema  # noqa: E402
from asifdb.db.session import make_engine, with_user  # noqa: E402
from asifdb.experiments.anchors_db import SHARED_DATA  # noqa: E402
from asifdb.services.model import Encoders  # noqa: E402

TEMPLATE = "asifdb_template"
# The suite's sources lie in temporary folders or the real data: those are its SOURCE_ROOTS, for
# this process and every one it starts (the default, ../shared/data, depends on the checkout).
os.environ["SOURCE_ROOTS"] = json.dumps([tempfile.gettempdir(), str(SHARED_DATA)])


def _admin_url(server_url: str) -> str:
    url = make_url(server_url)
    return f"postgresql://postgres@/postgres?host={url.query['host']}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    embedded.stop(_RUN_DATA / "pg")
    shutil.rmtree(_RUN_DATA, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert SHARED_DATA.is_dir(), f"real test data expected at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of a real embedded PostgreSQL 18 + pgvector, with a migrated template database."""
    # Not under pytest's tmp_path: pytest prunes old base folders, even while a server runs.
    folder = Path(tempfile.mkdtemp(prefix="asifdb-test-pg-"))
    pgdata = folder / "data"
    url = embedded.start(pgdata)
    with psycopg.connect(_admin_url(url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    template_engine = make_engine(make_url(url).set(database=TEMPLATE))
    schema.upgrade(template_engine)
    template_engine.dispose()
    yield url
    embedded.stop(pgdata)
    shutil.rmtree(folder, ignore_errors=True)


def create_database(server_url: str, *, template: str | None = TEMPLATE) -> str:
    """A new database on the test server. Cloned from a migrated template, its URL logs in as
    the application role, as the platform's components do (so the suite proves they need no
    more); an empty one's URL is the superuser's, for migrations."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(_admin_url(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{clause}')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    if template is None:
        return url
    # A clone copies the schema's grants but not the database's own (who may connect).
    engine = make_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        roles.grant_database(conn)
    engine.dispose()
    return with_user(url, roles.APP, None)


def setup_url(url: str) -> str:
    """The same database as the set-up role (the embedded superuser): schema work only."""
    return with_user(url, "postgres", None)


def server_folder(db_url: str) -> Path:
    """The test server's data folder (what SERVER_DATA_DIR names for the embedded server)."""
    url = make_url(setup_url(db_url)).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
        return Path(conn.execute("SHOW data_directory").fetchone()[0])


@pytest.fixture(scope="session")
def encoders() -> Encoders:
    """The default encoders, loaded once per test run (loading dominates small tests)."""
    from asifdb.encoders import get_encoder
    from asifdb.settings import Settings

    defaults = Settings()
    return Encoders(
        image=get_encoder(defaults.image_encoder), text=get_encoder(defaults.text_encoder)
    )


@pytest.fixture
def db_url(pg_server: str) -> str:
    """A fresh database at the schema's head."""
    return create_database(pg_server)


@pytest.fixture
def empty_db_url(pg_server: str) -> str:
    """A fresh database with no schema at all."""
    return create_database(pg_server, template=None)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()
