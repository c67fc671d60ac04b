"""Erasure, tried as a steward's lawyer (and an adversary) would: after it, no byte of the
licence's embeddings or captions is in any file of the database, its images are gone unless
another licence holds the same bytes, history keeps ids and scores only, the licence cannot
come back, and every other licence's data is untouched. Real database, real blob store, real
encoders; the same search before the erasure finds the bytes, so it can fail."""

import json
import tarfile
from pathlib import Path

import numpy as np
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from asifdb.anchors.store import fetch_binary
from asifdb.context import Platform
from asifdb.errors import Conflict
from asifdb.services import classify, erasure, ingestion, labelsets, licences, predictions
from asifdb.services import retrieve as retrieve_service
from asifdb.services.model import Encoders
from asifdb.settings import Settings
from tests.conftest import setup_url
from tests.samples import (
    TEST_ROOTS,
    add_member,
    asifdb_cli,
    cli_env,
    copy_samples,
    ingest_now,
)

GONE, KEPT = "withdrawn", "kept"
N = 10


def _pgdata(db_url: str) -> Path:
    url = make_url(setup_url(db_url)).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
        return Path(conn.execute("SHOW data_directory").fetchone()[0])


def _database_files(db_url: str) -> list[Path]:
    """Every file of this database's folder (all its tables, indexes, TOAST), not only the
    tables erasure rewrites: a table it forgot would show here."""
    url = make_url(setup_url(db_url)).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        oid = conn.execute(
            "SELECT oid FROM pg_database WHERE datname = current_database()"
        ).fetchone()[0]
    return sorted(p for p in (_pgdata(db_url) / "base" / str(oid)).iterdir() if p.is_file())


def _found(files: list[Path], patterns: dict[int, list[bytes]]) -> set[int]:
    """Pair ids any of whose patterns is in any of the files."""
    blobs = [f.read_bytes() for f in files]
    return {pid for pid, pats in patterns.items() if any(p in b for p in pats for b in blobs)}


def _patterns(platform: Platform, licence: str) -> dict[int, list[bytes]]:
    """Each pair's text embedding as stored (two 32-byte windows) and its caption's bytes."""
    with platform.sessions() as session:
        rows = fetch_binary(
            session,
            "SELECT p.id, p.text_embedding, p.caption FROM pairs p JOIN licenses l "
            "ON l.id = p.license_id WHERE l.name = %(n)s ORDER BY p.id",
            {"n": licence},
        )
    out: dict[int, list[bytes]] = {}
    for pair_id, emb, caption in rows:
        little = np.asarray(emb).astype("<f2")
        out[pair_id] = [little[40:56].tobytes(), little[300:316].tobytes(), caption.encode()]
    return out


def _shard(shared_data: Path, folder: Path, *, offset: int, extra: bytes | None = None) -> Path:
    folder.mkdir()
    with tarfile.open(folder / "00000.tar", "w") as tar:
        copy_samples(shared_data, tar, N, offset=offset)
        if extra is not None:  # the same image bytes as a pair of the other licence
            add_member(tar, "shared.jpg", extra)
            add_member(tar, "shared.txt", b"the same photograph, licensed again separately")
    return folder


def _first_image(shared_data: Path) -> bytes:
    with tarfile.open(shared_data / "tiny-imagenet-pairs-wds" / "00000.tar") as src:
        name = sorted(m for m in src.getnames() if m.endswith(".jpg"))[0]
        return src.extractfile(name).read()  # type: ignore[union-attr]


@pytest.fixture
def platform(db_url: str, tmp_path: Path, encoders: Encoders, shared_data: Path) -> Platform:
    settings = Settings(database_url=db_url, data_dir=tmp_path / "data")
    platform = Platform(settings)
    platform.__dict__["encoders"] = encoders
    ingest_now(platform, _shard(shared_data, tmp_path / "gone", offset=0), GONE)
    extra = _first_image(shared_data)
    ingest_now(platform, _shard(shared_data, tmp_path / "kept", offset=N, extra=extra), KEPT)
    return platform


def _use(platform: Platform, shared_data: Path) -> tuple[int, int]:
    """A recorded classification and a recorded retrieval over the whole collection."""
    image = (shared_data / "cifar10" / "test" / "cat").iterdir().__next__().read_bytes()
    with platform.sessions.begin() as session:
        [result] = classify.classify(
            session,
            live=platform.live,
            encoders=platform.encoders,
            images=[("cat.png", image)],
            candidates=labelsets.check(["cat", "dog", "ship"], None),
            options=classify.Options(k=12, p=8.0),
            client="test",
            channel="api",
            blobs=platform.blobs,
        )
    with platform.sessions.begin() as session:
        hits = retrieve_service.retrieve(
            session,
            live=platform.live,
            encoders=platform.encoders,
            direction="image_to_text",
            image=("cat.png", image),
            options=classify.Options(k=12, p=8.0),
            top=2 * N,
            client="test",
            channel="api",
        )
    return result["prediction_id"], hits["prediction_id"]


def _erase(platform: Platform, pgdata: Path | None, **kw: object) -> erasure.ErasureReport:
    return erasure.erase(
        sessions=platform.sessions,
        engine=platform.engine,
        blobs=platform.blobs,
        licence=GONE,
        reason="the rights holder withdrew consent",
        actor="steward",
        pgdata=pgdata,
        live=platform.live,
        **kw,  # type: ignore[arg-type]
    )


def _revoke(platform: Platform) -> None:
    with platform.sessions.begin() as session:
        licences.revoke(session, licence=GONE, reason="withdrawn", actor="steward")


def test_erasure_leaves_no_byte_of_the_licence_in_the_database_files(
    platform: Platform, db_url: str, shared_data: Path
) -> None:
    classified, retrieved = _use(platform, shared_data)
    gone, kept = _patterns(platform, GONE), _patterns(platform, KEPT)
    with platform.engine.connect() as conn:
        kept_before = conn.execute(
            text(
                "SELECT id, text_embedding::text, caption, image_sha256 FROM pairs p "
                "WHERE license_id = (SELECT id FROM licenses WHERE name = :n) ORDER BY id"
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
    assert _found(_database_files(db_url), gone) == set(gone)
    _revoke(platform)
    # Revocation excludes from the model; it erases nothing.
    assert _found(_database_files(db_url), gone) == set(gone)

    report = _erase(platform, _pgdata(db_url))

    assert report.passed, [c for c in report.checks if not c.passed]
    assert report.removed["pairs"] == N
    assert report.removed["blobs_removed"] == N - 1 and report.removed["blobs_kept_shared"] == 1
    by_name = {c.name: c for c in report.checks}
    bytes_check = by_name["the erased bytes absent from the table files"]
    assert bytes_check.found_before and bytes_check.found_before > 0
    assert bytes_check.found_after == 0
    # Independently of the report: no file of the database holds any erased pair's bytes,
    # while every kept pair's bytes are still there.
    files = _database_files(db_url)
    assert _found(files, gone) == set()
    assert _found(files, kept) == set(kept)
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
                "SELECT id, text_embedding::text, caption, image_sha256 FROM pairs p "
                "WHERE license_id = (SELECT id FROM licenses WHERE name = :n) ORDER BY id"
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
        erased_rows = [e for e in shown["evidence"] if e["pair_id"] in gone]
        assert erased_rows, "the classification used pairs of the erased licence"
        assert all(e["caption"] is None and e["pair_deleted"] for e in erased_rows)
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
        _erase(platform, None)
    _revoke(platform)
    report = _erase(platform, None)
    # Without the server's files: what the server can show, the relations rewritten.
    assert report.passed
    with pytest.raises(Conflict, match="erased"):
        _erase(platform, None)
    with platform.sessions.begin() as session, pytest.raises(Conflict, match="irreversible"):
        licences.restore(session, licence=GONE, actor="steward")
    with platform.sessions.begin() as session, pytest.raises(Conflict, match="erased"):
        ingestion.start_job(
            session,
            source=str(_shard(shared_data, tmp_path / "again", offset=0)),
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
    _revoke(platform)
    with platform.sessions() as session:
        licence_id = licences.get_by_name(session, name=GONE).id
    # As if the process were killed right after the removal's commit.
    erasure._remove(platform.sessions, licence_id, reason="consent withdrawn", actor="steward")
    with platform.sessions() as session:
        assert erasure.report(session, licence=GONE).status == "scrubbing"
    report = _erase(platform, _pgdata(db_url))
    assert report.status == "complete" and report.passed
    # The samples died with the process: the check shows what the server can, the rewrite.
    assert "rewritten" in report.checks[-2].detail
    assert report.removed["blobs_removed"] == N - 1


def test_the_cli_erases_with_a_typed_confirmation_and_shows_the_stored_report(
    platform: Platform, db_url: str, tmp_path: Path
) -> None:
    _revoke(platform)
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
