"""The tamper-evident audit log: every event is hash-chained by the database itself, and
`asifdb audit verify` names the first broken link, however the log was changed. Tampering
needs the superuser (the application role cannot even try); each test has its own database."""

import hashlib
import threading
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from alembic import command
from sqlalchemy.engine import make_url

from asifdb.db import roles, schema
from asifdb.db.models import AuditEvent
from asifdb.db.session import make_engine, session_factory, with_user
from asifdb.services import audit_chain, keys, licences
from asifdb.services.audit_chain import GENESIS_HASH, ChainReport, Link
from tests.conftest import setup_url
from tests.samples import asifdb_cli, cli_env

_INSERT = (
    "INSERT INTO audit_events (actor, action, target_type, target_id, reason, details) "
    "VALUES ('steward', 'license.revoke', 'license', %s, 'expired', '{\"pairs\": 3}')"
)


def _psycopg(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _connect(url: str, user: str) -> psycopg.Connection:
    return psycopg.connect(_psycopg(with_user(url, user, None)), autocommit=True)


def _report(db_url: str, expect: Link | None = None) -> ChainReport:
    """What an auditor's `verify` finds."""
    engine = make_engine(with_user(db_url, roles.AUDITOR, None))
    try:
        with engine.connect() as conn:
            return audit_chain.verify(conn, expect=expect)
    finally:
        engine.dispose()


def _events(db_url: str, n: int) -> None:
    with _connect(db_url, roles.APP) as conn:
        for i in range(n):
            conn.execute(_INSERT, (str(i),))


def _superuser(db_url: str) -> psycopg.Connection:
    """The one connection that can tamper: the server's superuser, triggers switched off."""
    conn = psycopg.connect(_psycopg(setup_url(db_url)), autocommit=True)
    conn.execute("SET session_replication_role = replica")
    return conn


def _id_at(db_url: str, seq: int) -> int:
    with _connect(db_url, roles.AUDITOR) as conn:
        row = conn.execute("SELECT id FROM audit_events WHERE chain_seq = %s", (seq,)).fetchone()
    assert row is not None
    return row[0]


def _chain(db_url: str) -> list[tuple[int, int, str, str]]:
    with _connect(db_url, roles.AUDITOR) as conn:
        return conn.execute(
            "SELECT chain_seq, id, prev_hash, hash FROM audit_events ORDER BY id"
        ).fetchall()


def _assert_linked(db_url: str) -> None:
    chain = _chain(db_url)
    assert [seq for seq, *_ in chain] == list(range(1, len(chain) + 1))
    previous = GENESIS_HASH
    for _, _, prev_hash, digest in chain:
        assert prev_hash == previous and len(digest) == 64
        previous = digest


# ------------------------------------------------------------ every insert is chained


def test_events_written_by_services_and_by_raw_sql_are_chained(db_url: str) -> None:
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        licences.create(session, name="cc-by", actor="steward")
        keys.create(session, name="ana", role="auditor", actor="admin")
    with sessions.begin() as session:
        licences.revoke(session, licence="cc-by", reason="holder withdrew it", actor="steward")
    with _connect(db_url, roles.APP) as conn:  # curation's statement: many rows at once
        conn.execute(
            "INSERT INTO audit_events (actor, action, target_type, target_id, reason) "
            "SELECT 'steward', 'pair.reject', 'pair', unnest(CAST(%s AS text[])), 'blurry'",
            ([str(i) for i in range(2500)],),
        )
    engine.dispose()
    auditor = make_engine(with_user(db_url, roles.AUDITOR, None))
    with session_factory(auditor)() as session:
        report = audit_chain.verify(session)
    auditor.dispose()

    assert report.ok, report.broken
    assert report.events_checked == 2503  # more than two of verify's batches
    chain = _chain(db_url)
    assert report.head == Link(2503, chain[-1][3])
    _assert_linked(db_url)


def test_an_inserter_cannot_choose_its_link_or_its_time(db_url: str) -> None:
    _events(db_url, 2)
    with _connect(db_url, roles.APP) as conn:
        conn.execute(
            "INSERT INTO audit_events (actor, action, target_type, target_id, at, chain_seq, "
            "prev_hash, hash) VALUES ('x', 'y', 'z', 'w', '2000-01-01', 1, %s, %s)",
            (GENESIS_HASH, "e" * 64),
        )
    engine = make_engine(db_url)
    with session_factory(engine).begin() as session:
        session.add(
            AuditEvent(
                actor="x",
                action="y",
                target_type="z",
                target_id="v",
                chain_seq=99,
                prev_hash="f" * 64,
                hash="e" * 64,
            )
        )
    engine.dispose()

    chain = _chain(db_url)
    assert [seq for seq, *_ in chain] == [1, 2, 3, 4]
    assert "e" * 64 not in {digest for *_, digest in chain}
    _assert_linked(db_url)
    with _connect(db_url, roles.AUDITOR) as conn:
        (at,) = conn.execute("SELECT at FROM audit_events WHERE chain_seq = 3").fetchone()
    assert at.year >= 2026
    assert _report(db_url).ok


def test_the_stored_hash_is_the_sha256_of_the_canonical_text(db_url: str) -> None:
    _events(db_url, 1)
    with _connect(db_url, roles.AUDITOR) as conn:
        canonical, digest = conn.execute(
            f"SELECT {audit_chain.CANONICAL}, e.hash FROM audit_events e"
        ).fetchone()
    assert hashlib.sha256(canonical.encode()).hexdigest() == digest
    assert canonical.startswith("[1, ") and canonical.endswith(f'"{GENESIS_HASH}"]')
    assert '"expired"' in canonical and '{"pairs": 3}' in canonical


# ------------------------------------------------------------ tampering, and what verify says


def test_a_changed_event_is_named(db_url: str) -> None:
    _events(db_url, 4)
    with _superuser(db_url) as conn:
        conn.execute("UPDATE audit_events SET reason = 'never happened' WHERE chain_seq = 2")
    report = _report(db_url)
    assert not report.ok and report.broken is not None
    assert (report.broken.seq, report.broken.problem) == (2, "hash_mismatch")
    assert report.broken.event_id == _id_at(db_url, 2)
    assert report.events_checked == 1


def test_a_changed_event_with_its_hash_recomputed_breaks_the_next_link(db_url: str) -> None:
    _events(db_url, 4)
    with _superuser(db_url) as conn:
        conn.execute("UPDATE audit_events SET actor = 'someone else' WHERE chain_seq = 2")
        conn.execute("UPDATE audit_events e SET hash = audit_event_hash(e) WHERE chain_seq = 2")
    broken = _report(db_url).broken
    assert broken is not None
    assert (broken.seq, broken.problem) == (3, "prev_hash_mismatch")
    assert broken.event_id == _id_at(db_url, 3)


@pytest.mark.parametrize("seq", [1, 2])
def test_a_removed_event_is_named_as_a_gap(db_url: str, seq: int) -> None:
    _events(db_url, 4)
    with _superuser(db_url) as conn:
        conn.execute("DELETE FROM audit_events WHERE chain_seq = %s", (seq,))
    report = _report(db_url)
    assert report.broken is not None
    assert (report.broken.seq, report.broken.event_id) == (seq, None)
    assert report.broken.problem == "missing_event"
    assert report.events_checked == seq - 1


def test_a_removed_last_event_is_found_by_the_head(db_url: str) -> None:
    _events(db_url, 4)
    with _superuser(db_url) as conn:
        conn.execute("DELETE FROM audit_events WHERE chain_seq = 4")
    report = _report(db_url)
    assert report.broken is not None
    assert (report.broken.seq, report.broken.problem) == (4, "head_mismatch")
    assert report.events_checked == 3


def test_a_cut_end_with_the_head_rewound_is_found_by_a_recorded_head(db_url: str) -> None:
    _events(db_url, 4)
    recorded = _report(db_url).head
    assert recorded is not None and recorded.seq == 4
    with _superuser(db_url) as conn:
        conn.execute("DELETE FROM audit_events WHERE chain_seq = 4")
        conn.execute(
            "UPDATE audit_chain_head SET seq = 3, "
            "hash = (SELECT hash FROM audit_events WHERE chain_seq = 3)"
        )
    assert _report(db_url).ok  # consistent again: only a head kept elsewhere tells
    broken = _report(db_url, expect=recorded).broken
    assert broken is not None
    assert (broken.seq, broken.problem) == (4, "expected_link_missing")
    assert _report(db_url, expect=Link(2, _chain(db_url)[1][3])).ok


@pytest.mark.parametrize("hashed", [False, True], ids=["made-up hash", "correct hash"])
def test_an_event_forged_with_the_trigger_skipped_is_found(db_url: str, hashed: bool) -> None:
    _events(db_url, 3)
    with _superuser(db_url) as conn:
        conn.execute(
            "INSERT INTO audit_events (actor, action, target_type, target_id, chain_seq, "
            "prev_hash, hash) SELECT 'steward', 'license.restore', 'license', '1', seq + 1, "
            "hash, %s FROM audit_chain_head",
            ("a" * 64,),
        )
        if hashed:
            conn.execute("UPDATE audit_events e SET hash = audit_event_hash(e) WHERE chain_seq = 4")
    broken = _report(db_url).broken
    assert broken is not None
    assert broken.seq == 4 and broken.event_id == _id_at(db_url, 4)
    assert broken.problem == ("head_mismatch" if hashed else "hash_mismatch")


def test_a_rewritten_chain_is_found_only_by_a_recorded_head(db_url: str) -> None:
    _events(db_url, 3)
    recorded = _report(db_url).head
    assert recorded is not None
    with _superuser(db_url) as conn:
        conn.execute("UPDATE audit_events SET reason = 'rewritten' WHERE chain_seq = 1")
        for seq in (1, 2, 3):
            conn.execute(
                "UPDATE audit_events e SET prev_hash = coalesce((SELECT hash FROM audit_events "
                "WHERE chain_seq = e.chain_seq - 1), %s) WHERE chain_seq = %s",
                (GENESIS_HASH, seq),
            )
            conn.execute(
                "UPDATE audit_events e SET hash = audit_event_hash(e) WHERE chain_seq = %s", (seq,)
            )
        conn.execute(
            "UPDATE audit_chain_head SET hash = (SELECT hash FROM audit_events WHERE chain_seq = 3)"
        )
    assert _report(db_url).ok  # the documented limit: a superuser can rewrite everything
    broken = _report(db_url, expect=recorded).broken
    assert broken is not None
    assert (broken.seq, broken.problem) == (3, "expected_link_missing")


def test_a_canonical_function_changed_to_hide_an_edit_is_found(db_url: str) -> None:
    _events(db_url, 3)
    with _superuser(db_url) as conn:
        conn.execute("UPDATE audit_events SET reason = 'forged' WHERE chain_seq = 2")
        # The text the server hashes still says 'expired', so the stored hash matches it.
        conn.execute(
            """
            CREATE OR REPLACE FUNCTION audit_event_canonical(e public.audit_events)
            RETURNS text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
                SELECT jsonb_build_array(
                    e.chain_seq, e.id,
                    to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                    e.actor, e.action, e.target_type, e.target_id,
                    CASE WHEN e.chain_seq = 2 THEN 'expired' ELSE e.reason END,
                    e.details, e.model_version, e.prev_hash
                )::text
            $$
            """
        )
    broken = _report(db_url).broken
    assert broken is not None
    assert (broken.seq, broken.problem) == (2, "canonical_mismatch")


def test_a_missing_head_row_is_found(db_url: str) -> None:
    _events(db_url, 1)
    with _superuser(db_url) as conn:
        conn.execute("DELETE FROM audit_chain_head")
    report = _report(db_url)
    assert report.broken is not None and report.broken.problem == "head_mismatch"


# ------------------------------------------------------------ the application role cannot try

APP_ATTACKS = [
    "UPDATE audit_chain_head SET seq = 0",
    "DELETE FROM audit_chain_head",
    "INSERT INTO audit_chain_head VALUES (2, 0, 'x')",
    "TRUNCATE audit_chain_head",
    "SELECT * FROM audit_chain_head FOR UPDATE",
    "ALTER TABLE audit_events DISABLE TRIGGER zz_audit_events_chain",
    "DROP TRIGGER zz_audit_events_chain ON audit_events",
    "CREATE OR REPLACE FUNCTION audit_events_chain() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
    "CREATE OR REPLACE FUNCTION audit_event_hash(e audit_events) RETURNS text "
    "LANGUAGE sql AS $$ SELECT 'x' $$",
    "CREATE OR REPLACE FUNCTION audit_event_canonical(e audit_events) RETURNS text "
    "LANGUAGE sql AS $$ SELECT 'x' $$",
    "ALTER FUNCTION audit_events_chain() SECURITY INVOKER",
    "ALTER FUNCTION audit_events_chain() RESET search_path",
    "DROP FUNCTION audit_events_chain() CASCADE",
    "SELECT audit_events_chain()",
    "ALTER TABLE audit_chain_head OWNER TO asifdb_app",
]


@pytest.mark.parametrize("attack", APP_ATTACKS)
def test_the_application_role_cannot_touch_the_chain(db_url: str, attack: str) -> None:
    _events(db_url, 2)
    with _connect(db_url, roles.APP) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(attack)
    _events(db_url, 1)
    report = _report(db_url)
    assert report.ok and report.events_checked == 3


def test_temporary_look_alikes_do_not_fool_the_trigger(db_url: str) -> None:
    _events(db_url, 2)
    with _connect(db_url, roles.APP) as conn:
        conn.execute("CREATE TEMP TABLE audit_chain_head (id int, seq bigint, hash text)")
        conn.execute("INSERT INTO audit_chain_head VALUES (1, 41, %s)", ("b" * 64,))
        conn.execute(
            "CREATE FUNCTION pg_temp.audit_event_hash(e audit_events) RETURNS text "
            "LANGUAGE sql AS $$ SELECT repeat('c', 64) $$"
        )
        conn.execute("SET search_path = pg_temp, public")
        conn.execute(_INSERT, ("shadowed",))
    _assert_linked(db_url)
    report = _report(db_url)
    assert report.ok and report.events_checked == 3


# ------------------------------------------------------------ concurrent writers


def test_concurrent_writers_make_one_gapless_chain(db_url: str) -> None:
    threads, each = 8, 50
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            with _connect(db_url, roles.APP) as conn:
                start.wait()
                for i in range(each):
                    if i % 10 == 9:  # a rolled-back event takes an id, never a link
                        with conn.transaction(force_rollback=True):
                            conn.execute(_INSERT, (f"{worker}-{i}",))
                    else:
                        conn.execute(_INSERT, (f"{worker}-{i}",))
        except Exception as exc:
            failures.append(exc)

    workers = [threading.Thread(target=write, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert not failures, failures
    written = threads * (each - each // 10)
    chain = _chain(db_url)
    assert len(chain) == written
    assert sorted(seq for seq, *_ in chain) == list(range(1, written + 1))
    assert max(event_id for _, event_id, *_ in chain) > written  # ids have gaps, links do not
    report = _report(db_url)
    assert report.ok and report.events_checked == written


# ------------------------------------------------------------ the migration


def test_the_migration_chains_existing_events_and_downgrades(db_url: str) -> None:
    setup = setup_url(db_url)
    config = schema.alembic_config(setup)
    command.downgrade(config, "0008")
    with psycopg.connect(_psycopg(setup), autocommit=True) as conn:
        for when in ("2026-11-30 10:00:00.123456+00", "2026-11-29 09:00:00+02"):
            conn.execute(
                "INSERT INTO audit_events (at, actor, action, target_type, target_id, details) "
                "VALUES (%s, 'seed', 'license.create', 'license', '1', '{\"name\": \"é\"}')",
                (when,),
            )
    engine = make_engine(setup)
    schema.upgrade(engine)
    engine.dispose()
    with _connect(db_url, roles.AUDITOR) as conn:
        kept = conn.execute("SELECT at FROM audit_events ORDER BY id").fetchall()
    assert [at for (at,) in kept] == [
        datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 11, 29, 7, 0, 0, tzinfo=UTC),
    ]
    _events(db_url, 1)
    _assert_linked(db_url)
    report = _report(db_url)
    assert report.ok and report.events_checked == 3

    command.downgrade(config, "0008")
    with psycopg.connect(_psycopg(setup)) as conn:
        columns = {
            name
            for (name,) in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'audit_events'"
            )
        }
        head = conn.execute("SELECT to_regclass('audit_chain_head')").fetchone()
    assert not {"chain_seq", "prev_hash", "hash"} & columns and head == (None,)
    engine = make_engine(setup)
    schema.upgrade(engine)
    engine.dispose()
    privileges = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
    with psycopg.connect(_psycopg(setup)) as conn:
        held = {
            (role, privilege)
            for role in (roles.APP, roles.AUDITOR)
            for privilege in privileges
            if conn.execute(
                "SELECT has_table_privilege(%s, 'audit_chain_head', %s)", (role, privilege)
            ).fetchone()[0]
        }
    assert held == {(roles.AUDITOR, "SELECT")}
    assert _report(db_url).ok


# ------------------------------------------------------------ the command


def test_audit_verify_exits_zero_when_intact_and_names_the_broken_link(
    db_url: str, tmp_path: Path
) -> None:
    _events(db_url, 3)
    env = cli_env(db_url, tmp_path)
    intact = asifdb_cli("audit", "verify", env=env, timeout=120)
    assert intact.returncode == 0, intact.stderr
    head = _report(db_url).head
    assert "3 events" in intact.stdout and str(head) in intact.stdout

    with _superuser(db_url) as conn:
        conn.execute("UPDATE audit_events SET reason = 'never happened' WHERE chain_seq = 2")
    broken = asifdb_cli("audit", "verify", "--expect", str(head), env=env, timeout=120)
    assert broken.returncode == 1
    assert f"event 2 (id {_id_at(db_url, 2)}): hash_mismatch" in broken.stderr
    assert "Traceback" not in broken.stderr

    garbled = asifdb_cli("audit", "verify", "--expect", "3:nothex", env=env, timeout=120)
    assert garbled.returncode == 1 and "SEQ:HASH" in garbled.stderr
