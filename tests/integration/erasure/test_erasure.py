"""Erasure, tried as a steward's lawyer (and an adversary) would: after it, no byte of the
licence's embeddings or captions is in any file of the database, its images are gone unless
another licence holds the same bytes, history keeps ids and scores only, the licence cannot
come back, and every other licence's data is untouched. Real database, real blob store, real
encoders; the same search before the erasure finds the bytes, so it can fail."""

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from asifdb.context import Platform
from asifdb.errors import Conflict
from asifdb.services import erasure, ingestion, licences, predictions
from tests.conftest import server_folder
from tests.integration.erasure.conftest import (
    GONE,
    KEPT,
    N,
    byte_patterns,
    database_files,
    erase_gone,
    make_shard,
    pairs_found,
    revoke_gone,
    use_model,
)
from tests.samples import TEST_ROOTS, asifdb_cli, cli_env


def test_erasure_leaves_no_byte_of_the_licence_in_the_database_files(
    platform: Platform, db_url: str, shared_data: Path
) -> None:
    classified, retrieved = use_model(platform, shared_data)
    gone, kept = byte_patterns(platform, GONE), byte_patterns(platform, KEPT)
    with platform.engine.connect() as conn:
        kept_before = conn.execute(
            text(
                "SELECT id, e.embedding::text, caption, image_sha256 FROM pairs p "
                "JOIN pair_embeddings e ON e.pair_id = p.id "
                "WHERE license_id = (SELECT id FROM licenses WHERE name = :n) "
                "ORDER BY id, e.encoder"
            ),
            {"n": KEPT},
        ).all()
        gone_shas = set(
            conn.execute(
                text(
                    "SELECT image_sha256 FROM pairs WHERE license_id = "
                    "(SELECT id FROM licenses WHERE name = :n)"
                ),
                {"n": GONE},
            ).scalars()
        )
    # The search can fail: before the erasure, every pair's bytes are in the files.
    assert pairs_found(database_files(db_url), gone) == set(gone)
    revoke_gone(platform)
    # Revocation excludes from the model; it erases nothing.
    assert pairs_found(database_files(db_url), gone) == set(gone)

    report = erase_gone(platform, server_folder(db_url))

    assert report.passed, [c for c in report.checks if not c.passed]
    assert report.removed["pairs"] == N
    assert report.removed["blobs_removed"] == N - 1 and report.removed["blobs_kept_shared"] == 1
    by_name = {c.name: c for c in report.checks}
    bytes_check = by_name["the erased bytes absent from the table files"]
    assert bytes_check.found_before and bytes_check.found_before > 0
    assert bytes_check.found_after == 0
    # Independently of the report: no file of the database holds any erased pair's bytes,
    # while every kept pair's bytes are still there.
    files = database_files(db_url)
    assert pairs_found(files, gone) == set()
    assert pairs_found(files, kept) == set(kept)
    # Images: gone, except the one another licence holds too.
    held = [sha for sha in gone_shas if platform.blobs.exists(sha)]
    assert len(held) == 1
    with platform.engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM pairs WHERE image_sha256 = :s"), {"s": held[0]}
            ).scalar_one()
            == 1
        )
        # The other licence: every pair, embedding and caption as before, all usable.
        kept_after = conn.execute(
            text(
                "SELECT id, e.embedding::text, caption, image_sha256 FROM pairs p "
                "JOIN pair_embeddings e ON e.pair_id = p.id "
                "WHERE license_id = (SELECT id FROM licenses WHERE name = :n) "
                "ORDER BY id, e.encoder"
            ),
            {"n": KEPT},
        ).all()
        assert kept_after == kept_before
        assert conn.execute(text("SELECT count(*) FROM usable_pairs")).scalar_one() == N + 1
    assert all(platform.blobs.exists(row[3]) for row in kept_after)
    # The model in this process holds none of them (its rows were reloaded, not masked).
    with platform.sessions() as session, session.begin():
        session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        view = platform.live.view(session)
    assert not set(view.anchors.ids.tolist()) & set(gone)
    assert len(view.anchors.ids) == N + 1

    # History: the predictions stay, their evidence reduced to ids and scores.
    with platform.sessions() as session:
        shown = predictions.get(session, prediction_id=classified, evidence_limit=None)
        erased_rows = [e for e in shown.evidence if e.pair_id in gone]
        assert erased_rows, "the classification used pairs of the erased licence"
        assert all(e.caption is None and e.pair_deleted for e in erased_rows)
        hits = session.execute(
            text("SELECT result->'hits' FROM predictions WHERE id = :p"), {"p": retrieved}
        ).scalar_one()
    named = [h for h in hits if h["pair_id"] in gone]
    assert named and all(h["candidate"] is None and h["erased"] for h in named)
    assert all(h["candidate"] for h in hits if h["pair_id"] not in gone)


def test_an_erased_licence_never_comes_back_and_nothing_is_added_under_it(
    platform: Platform, db_url: str, tmp_path: Path, shared_data: Path
) -> None:
    with pytest.raises(Conflict, match="revoke it first"):
        erase_gone(platform, None)
    revoke_gone(platform)
    report = erase_gone(platform, None)
    # Without the server's files: what the server can show, the relations rewritten.
    assert report.passed
    with pytest.raises(Conflict, match="erased"):
        erase_gone(platform, None)
    with platform.sessions.begin() as session, pytest.raises(Conflict, match="irreversible"):
        licences.restore(session, licence=GONE, actor="steward")
    with platform.sessions.begin() as session, pytest.raises(Conflict, match="erased"):
        ingestion.start_job(
            session,
            source=str(make_shard(shared_data, tmp_path / "again", offset=0)),
            roots=TEST_ROOTS,
            license_name=GONE,
            actor="annotator",
        )
    # The database itself refuses, whatever the caller (the application's own role):
    with platform.engine.connect() as conn:
        for attack, message in (
            ("UPDATE licenses SET status = 'active' WHERE name = 'withdrawn'", "cannot be undone"),
            ("UPDATE licenses SET status = 'erased' WHERE name = 'kept'", "must be revoked"),
            (
                "DELETE FROM pairs WHERE license_id = "
                "(SELECT id FROM licenses WHERE name = 'kept')",
                "only by erasing",
            ),
            (
                "INSERT INTO pairs (collection, image_sha256, caption, license_id, status) SELECT "
                "'c', repeat('a', 64), 'smuggled', id, 'ready' FROM licenses "
                "WHERE name = 'withdrawn'",
                "erased licence",
            ),
            ("DELETE FROM pair_registry", "permission denied"),
            ("DELETE FROM erasures", "permission denied"),
        ):
            with pytest.raises(Exception, match=message):
                conn.execute(text(attack))
            conn.rollback()
    # The report is stored and audited.
    with platform.sessions() as session:
        stored = erasure.report(session, licence=GONE)
        assert stored.passed and stored.erasure_id == report.erasure_id
        actions = (
            session.execute(
                text(
                    "SELECT action FROM audit_events WHERE target_type = 'license' "
                    "AND action LIKE 'license.eras%' ORDER BY id"
                )
            )
            .scalars()
            .all()
        )
    assert actions == ["license.erase", "license.erasure_report"]


def test_an_erasure_stopped_after_its_removal_committed_is_resumed(
    platform: Platform, db_url: str
) -> None:
    revoke_gone(platform)
    with platform.sessions() as session:
        licence_id = licences.get_by_name(session, name=GONE).id
    # As if the process were killed right after the removal's commit.
    erasure._remove(platform.sessions, licence_id, reason="consent withdrawn", actor="steward")
    with platform.sessions() as session:
        assert erasure.report(session, licence=GONE).status == "scrubbing"
    report = erase_gone(platform, server_folder(db_url))
    assert report.status == "complete" and report.passed
    # The samples died with the process: the check shows what the server can, the rewrite.
    assert "rewritten" in report.checks[-2].detail
    assert report.removed["blobs_removed"] == N - 1


def test_the_cli_erases_with_a_typed_confirmation_and_shows_the_stored_report(
    platform: Platform, db_url: str, tmp_path: Path
) -> None:
    revoke_gone(platform)
    env = cli_env(db_url, tmp_path / "data")
    refused = asifdb_cli(
        "licenses", "erase", GONE, "--reason", "withdrawn", env=env, input="withdraw\n"
    )
    assert refused.returncode == 1 and "did not match" in refused.stderr
    with platform.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pairs")).scalar_one() == 2 * N + 1
    done = asifdb_cli(
        "licenses", "erase", GONE, "--reason", "withdrawn", env=env, input=f"{GONE}\n"
    )
    assert done.returncode == 0, done.stderr
    assert "all checks passed" in done.stdout and "cannot erase" in done.stdout
    shown = asifdb_cli("licenses", "erasure-report", GONE, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    stored = json.loads(shown.stdout)
    assert stored["passed"] and stored["removed"]["pairs"] == N
