"""Erasure racing everything that could put the licence's data back or half-undo it: an
ingestion batch of the licence caught between its encoding and its commit, a batch queued
before the erasure, a second erasure of the same licence, two erasures of licences sharing an
image, a restore. The database's locks decide the order; each test forces one order and checks
that the outcome is whole: either the erasure removed everything, or it refused and changed
nothing."""

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from asifdb.context import Platform
from asifdb.db import roles
from asifdb.db.session import make_engine, with_user
from asifdb.errors import Conflict
from asifdb.services import audit_chain, ingestion, licences
from tests.conftest import server_folder
from tests.integration.erasure.conftest import (
    GONE,
    KEPT,
    N,
    erase_gone,
    make_shard,
    revoke_gone,
)
from tests.samples import TEST_ROOTS


class Background:
    """`fn` in a thread; `result()` joins it and returns its value or raises its error."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._out: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._out["value"] = fn()
        except BaseException as error:  # handed to the test's thread by result()
            self._out["error"] = error

    def alive(self) -> bool:
        return self._thread.is_alive()

    def result(self, timeout: float = 120) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the background call did not finish"
        if "error" in self._out:
            raise self._out["error"]
        return self._out["value"]


def _lock_waiters(platform: Platform, at_least: int, timeout: float = 30) -> None:
    """Wait until `at_least` sessions of this database wait for a lock (a row or a table)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with platform.engine.connect() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        if waiting >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} sessions came to wait for a lock")


def _licence_pairs(platform: Platform, name: str) -> int:
    with platform.engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FROM pairs WHERE license_id = "
                "(SELECT id FROM licenses WHERE name = :n)"
            ),
            {"n": name},
        ).scalar_one()


def _stored_blobs(platform: Platform) -> set[str]:
    return {p.name for p in platform.blobs.root.rglob("*") if p.is_file()}


def _referenced_blobs(platform: Platform) -> set[str]:
    with platform.engine.connect() as conn:
        return set(
            conn.execute(
                text(
                    "SELECT image_sha256 FROM pairs UNION "
                    "SELECT input_sha256 FROM predictions WHERE input_sha256 IS NOT NULL"
                )
            ).scalars()
        )


def _queued_job(platform: Platform, shared_data: Path, folder: Path) -> tuple[int, int]:
    """A new ingestion job of N more pairs under the licence to be erased: (job, its batch)."""
    source = make_shard(shared_data, folder, offset=2 * N)
    with platform.sessions.begin() as session:
        job = ingestion.start_job(
            session, source=str(source), roots=TEST_ROOTS, license_name=GONE, actor="annotator"
        )
        [batch] = ingestion.BATCHES.pending(session, job.id)
    return job.id, batch


def test_a_batch_caught_between_encoding_and_commit_is_waited_for_then_erased(
    platform: Platform, db_url: str, tmp_path: Path, shared_data: Path
) -> None:
    _, batch = _queued_job(platform, shared_data, tmp_path / "more")
    encoded, go = threading.Event(), threading.Event()

    def hold() -> None:
        encoded.set()
        assert go.wait(120)

    ingesting = Background(
        lambda: ingestion.process_batch(
            sessions=platform.sessions,
            blobs=platform.blobs,
            encoders=platform.encoders,
            batch_id=batch,
            on_encoded=hold,
        )
    )
    assert encoded.wait(120)  # its embeddings made and its blobs being written, not committed
    revoke_gone(platform)
    erasing = Background(lambda: erase_gone(platform, server_folder(db_url)))
    _lock_waiters(platform, 1)  # the erasure waits for the batch: it holds its row
    time.sleep(0.5)
    assert erasing.alive()
    go.set()
    outcome = ingesting.result()
    report = erasing.result()

    assert outcome.ready == N  # the batch committed its pairs (revoked: never usable) ...
    assert report.passed, [c for c in report.checks if not c.passed]
    assert report.removed["pairs"] == 2 * N  # ... and the erasure, after it, removed them too
    assert _licence_pairs(platform, GONE) == 0
    assert _licence_pairs(platform, KEPT) == N + 1
    # Every blob left is held by a pair that remains: the batch's images went with it.
    assert _stored_blobs(platform) == _referenced_blobs(platform)


def test_a_batch_queued_before_the_erasure_never_adds_a_pair_after_it(
    platform: Platform, tmp_path: Path, shared_data: Path
) -> None:
    job_id, batch = _queued_job(platform, shared_data, tmp_path / "more")
    revoke_gone(platform)
    report = erase_gone(platform, None)
    assert report.passed and report.removed["jobs_cancelled"] == 1
    # The worker takes the batch afterwards (it was already on the broker):
    outcome = ingestion.process_batch(
        sessions=platform.sessions,
        blobs=platform.blobs,
        encoders=platform.encoders,
        batch_id=batch,
    )
    assert outcome.status == "failed"
    assert _licence_pairs(platform, GONE) == 0
    with platform.engine.connect() as conn:
        status, error = conn.execute(
            text("SELECT status, error FROM jobs WHERE id = :j"), {"j": job_id}
        ).one()
    assert status == "cancelled" and "erased" in error
    assert _stored_blobs(platform) == _referenced_blobs(platform)


def test_two_erasures_of_one_licence_at_once_erase_it_once(platform: Platform, db_url: str) -> None:
    revoke_gone(platform)
    start = threading.Barrier(2)

    def erase() -> Any:
        start.wait()
        return erase_gone(platform, None)

    first, second = Background(erase), Background(erase)
    outcomes = []
    for call in (first, second):
        try:
            outcomes.append(call.result())
        except Conflict as refused:
            outcomes.append(refused)
    reports = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(reports) == 1 and reports[0].passed, outcomes
    assert "erased" in str(next(o for o in outcomes if isinstance(o, Exception)))
    with platform.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM erasures")).scalar_one() == 1
        actions = conn.execute(
            text("SELECT action FROM audit_events WHERE action LIKE 'license.eras%' ORDER BY id")
        ).scalars()
        assert list(actions) == ["license.erase", "license.erasure_report"]
    auditor = make_engine(with_user(db_url, roles.AUDITOR, None))
    with auditor.connect() as conn:
        assert audit_chain.verify(conn).ok  # the chain holds across the two writers
    auditor.dispose()
    assert _licence_pairs(platform, GONE) == 0 and _licence_pairs(platform, KEPT) == N + 1


def test_two_licences_sharing_an_image_erased_at_once_take_the_image_with_them(
    platform: Platform, db_url: str
) -> None:
    revoke_gone(platform)
    revoke_gone(platform, KEPT)
    start = threading.Barrier(2)

    def erase(name: str) -> Any:
        start.wait()
        return erase_gone(platform, server_folder(db_url), licence=name)

    gone = Background(lambda: erase(GONE))
    kept = Background(lambda: erase(KEPT))
    reports = [gone.result(), kept.result()]
    assert all(r.passed for r in reports), [c for r in reports for c in r.checks if not c.passed]
    # The shared image was kept by whichever erasure saw the other's pair still there, and
    # removed by the other: no image is left behind.
    assert sum(r.removed["blobs_removed"] for r in reports) == 2 * N
    assert _stored_blobs(platform) == set()
    with platform.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pairs")).scalar_one() == 0


def _restore(platform: Platform) -> Any:
    with platform.sessions.begin() as session:
        return licences.restore(session, licence=GONE, actor="steward")


@pytest.mark.parametrize("first", ["erasure", "restore"])
def test_a_restore_racing_the_erasure_either_wins_whole_or_is_refused(
    platform: Platform, first: str
) -> None:
    revoke_gone(platform)
    with platform.engine.connect() as holder:  # holds the licence row: both must queue
        holder.execute(text("SELECT id FROM licenses WHERE name = :n FOR UPDATE"), {"n": GONE})
        calls = {}
        for name in (first, "restore" if first == "erasure" else "erasure"):
            calls[name] = Background(
                (lambda: erase_gone(platform, None))
                if name == "erasure"
                else (lambda: _restore(platform))
            )
            _lock_waiters(platform, len(calls))
        holder.rollback()
    if first == "erasure":
        report = calls["erasure"].result()
        assert report.passed
        with pytest.raises(Conflict, match="irreversible"):
            calls["restore"].result()
        assert _licence_pairs(platform, GONE) == 0
    else:
        calls["restore"].result()
        with pytest.raises(Conflict, match="revoke it first"):
            calls["erasure"].result()
        # Nothing was erased: every pair is back in the model, no registry row marked.
        with platform.engine.connect() as conn:
            usable = conn.execute(
                text(
                    "SELECT count(*) FROM usable_pairs WHERE license_id = "
                    "(SELECT id FROM licenses WHERE name = :n)"
                ),
                {"n": GONE},
            ).scalar_one()
            marked = conn.execute(
                text("SELECT count(*) FROM pair_registry WHERE erased_at IS NOT NULL")
            ).scalar_one()
            erasures = conn.execute(text("SELECT count(*) FROM erasures")).scalar_one()
        assert (usable, marked, erasures) == (N, 0, 0)
