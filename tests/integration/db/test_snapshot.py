"""`db.session.snapshot`: a query's one snapshot is checked, never assumed (SQLAlchemy ignores
an isolation level asked for after the transaction began, with only a warning)."""

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from asifdb.db.session import SnapshotTooLate, snapshot


def test_a_snapshot_asked_for_after_a_read_is_refused(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        session.execute(text("SELECT 1"))
        with pytest.raises(SnapshotTooLate, match="read committed"):
            snapshot(session)


def test_a_snapshot_holds_for_the_whole_transaction(engine: Engine) -> None:
    count = text("SELECT count(*) FROM licenses")
    with Session(engine) as session, session.begin():
        snapshot(session)
        snapshot(session)  # a second use in the same snapshot is fine
        before = session.execute(count).scalar_one()
        with engine.begin() as other:  # committed meanwhile by another connection
            other.execute(text("INSERT INTO licenses (name) VALUES ('meanwhile')"))
        assert session.execute(text("SHOW transaction_isolation")).scalar_one() == (
            "repeatable read"
        )
        assert session.execute(count).scalar_one() == before
    with engine.connect() as conn:
        assert conn.execute(count).scalar_one() == before + 1
