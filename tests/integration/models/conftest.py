"""The models tests' database: a session factory over a fresh migrated database, with the
licences their pairs go under ("kept", and "withdrawn" for the one a test revokes)."""

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from asifdb.services import licences


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory.begin() as session:
        licences.create(session, name="kept", actor="test")
        licences.create(session, name="withdrawn", actor="test")
    return factory
