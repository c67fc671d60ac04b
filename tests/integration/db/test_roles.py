"""Least privilege below the code: what the application and auditor roles cannot do, however
they try. Every attack here worked when the components connected as the superuser."""

from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from asifdb.db import roles
from asifdb.db.session import make_engine, with_user
from tests.conftest import setup_url
from tests.samples import asifdb_cli, cli_env


def _psycopg(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _connect(url: str, user: str) -> psycopg.Connection:
    return psycopg.connect(_psycopg(with_user(url, user, None)), autocommit=True)


def _audit_row(db_url: str) -> None:
    with _connect(db_url, roles.APP) as conn:
        conn.execute(
            "INSERT INTO audit_events (actor, action, target_type, target_id) "
            "VALUES ('steward', 'revoke', 'license', '1')"
        )


def _audit_actors(db_url: str) -> list[str]:
    with psycopg.connect(_psycopg(setup_url(db_url))) as conn:
        return [r[0] for r in conn.execute("SELECT actor FROM audit_events ORDER BY id")]


APP_ATTACKS = [
    "UPDATE audit_events SET actor = 'x'",
    "DELETE FROM audit_events",
    "TRUNCATE audit_events",
    "WITH gone AS (DELETE FROM audit_events RETURNING id) SELECT count(*) FROM gone",
    "MERGE INTO audit_events a USING (SELECT 1 AS one) s ON true WHEN MATCHED THEN DELETE",
    "INSERT INTO audit_events (id, actor, action, target_type, target_id) "
    "SELECT id, 'x', 'y', 'z', 'w' FROM audit_events ON CONFLICT (id) DO UPDATE SET actor = 'x'",
    "SET session_replication_role = replica",
    "ALTER TABLE audit_events DISABLE TRIGGER ALL",
    "DROP TRIGGER audit_events_no_update_delete ON audit_events",
    "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$",
    "CREATE RULE swallow AS ON DELETE TO audit_events DO INSTEAD NOTHING",
    "ALTER TABLE audit_events OWNER TO asifdb_app",
    "SET ROLE asifdb_owner",
    "GRANT DELETE ON audit_events TO asifdb_app; DELETE FROM audit_events",
    "CREATE TABLE public.mine (a int)",
    "COPY (SELECT 1) TO PROGRAM 'id'",
    "COPY audit_events TO '/tmp/asifdb-app-copy'",
    "SELECT pg_read_file('/etc/passwd')",
    "DROP TABLE audit_events",
]


@pytest.mark.parametrize("attack", APP_ATTACKS)
def test_the_application_role_cannot_change_or_remove_an_audit_event(
    db_url: str, attack: str
) -> None:
    _audit_row(db_url)
    with _connect(db_url, roles.APP) as conn, pytest.raises(psycopg.errors.Error) as refused:
        conn.execute(attack)
    assert isinstance(
        refused.value,
        psycopg.errors.InsufficientPrivilege | psycopg.errors.RaiseException,
    ), refused.value
    assert _audit_actors(db_url) == ["steward"]
    assert not Path("/tmp/asifdb-app-copy").exists()


def test_the_application_role_does_its_job(db_url: str) -> None:
    with _connect(db_url, roles.APP) as conn:
        conn.execute("INSERT INTO licenses (name) VALUES ('cc-by')")
        conn.execute("UPDATE licenses SET holder = 'someone' WHERE name = 'cc-by'")
        conn.execute("CREATE TEMP TABLE stage (a int)")
        assert conn.execute("SELECT count(*) FROM audit_events").fetchone() == (0,)
        attributes = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles "
            "WHERE rolname = current_user"
        ).fetchone()
    assert attributes == (False, False, False, False)


AUDITOR_ESCAPES = [
    "COPY (SELECT 1) TO PROGRAM 'id > /tmp/asifdb-auditor-program'",
    "COPY licenses TO '/tmp/asifdb-auditor-copy'",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_read_binary_file('/etc/passwd')",
    "SELECT pg_ls_dir('.')",
    "SELECT pg_stat_file('postgresql.conf')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT lo_from_bytea(0, 'stash')",
    "SELECT lo_creat(-1)",
    "CREATE EXTENSION dblink",
    "SELECT * FROM api_keys",
    "SELECT key_hash FROM api_keys",
    "SELECT * FROM broker.kombu_message",
    "INSERT INTO licenses (name) VALUES ('x') RETURNING id",
    "WITH x AS (UPDATE licenses SET name = 'y' RETURNING id) SELECT * FROM x",
    "SELECT set_config('session_replication_role', 'replica', false)",
    "SELECT pg_reload_conf()",
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'asifdb_app'",
]


@pytest.mark.parametrize("escape", AUDITOR_ESCAPES)
def test_asifdb_sql_refuses_every_escape(db_url: str, escape: str, tmp_path: Path) -> None:
    # A live connection of the application's: the console must not be able to kill it.
    with _connect(db_url, roles.APP) as worker:
        out = asifdb_cli("sql", escape, env=cli_env(db_url, tmp_path), timeout=120)
        assert out.returncode == 1, (escape, out.stdout)
        assert "refused" in out.stderr and "Traceback" not in out.stderr
        assert worker.execute("SELECT 1").fetchone() == (1,)
    assert not Path("/tmp/asifdb-auditor-program").exists()
    assert not Path("/tmp/asifdb-auditor-copy").exists()


def test_asifdb_sql_reads_the_documented_views(db_url: str, tmp_path: Path) -> None:
    with _connect(db_url, roles.APP) as conn:
        conn.execute("INSERT INTO licenses (name) VALUES ('cc-by')")
    for query in (
        "SELECT count(*) FROM usable_pairs",
        "SELECT name FROM licenses",
        "SELECT count(*) FROM prediction_provenance",
        "SELECT count(*) FROM audit_events",
        "SELECT current_user",
    ):
        out = asifdb_cli("sql", query, "--json", env=cli_env(db_url, tmp_path), timeout=120)
        assert out.returncode == 0, (query, out.stderr)
    assert '"asifdb_auditor"' in out.stdout


def test_the_auditor_role_cannot_write_even_outside_the_cli(db_url: str) -> None:
    with _connect(db_url, roles.AUDITOR) as conn:
        conn.execute("SET default_transaction_read_only = off")
        for attack in (
            "INSERT INTO licenses (name) VALUES ('x')",
            "CREATE TEMP TABLE t (a int)",
            "CREATE TABLE public.t (a int)",
            "SELECT lo_create(0)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(attack)


def test_asifdb_sql_refuses_to_run_as_a_privileged_role(db_url: str, tmp_path: Path) -> None:
    env = cli_env(db_url, tmp_path)
    for privileged in (setup_url(db_url), db_url):  # the superuser, the application role
        env["AUDITOR_DATABASE_URL"] = privileged
        out = asifdb_cli("sql", "SELECT 1", env=env, timeout=120)
        assert out.returncode == 1
        assert "AUDITOR_DATABASE_URL" in out.stderr and "Traceback" not in out.stderr


def test_upgrade_needs_the_setup_role_and_sets_passwords(db_url: str) -> None:
    from asifdb.db import schema
    from asifdb.errors import ConfigError

    app_engine = make_engine(db_url)
    with pytest.raises(ConfigError, match="ADMIN_DATABASE_URL"):
        schema.upgrade(app_engine)
    app_engine.dispose()
    setup = make_engine(setup_url(db_url))
    schema.upgrade(setup, app_password="app-secret", auditor_password="audit-secret")
    with setup.begin() as conn:
        stored = dict(
            conn.execute(
                text(
                    "SELECT rolname, rolpassword IS NOT NULL FROM pg_authid "
                    "WHERE rolname IN ('asifdb_app', 'asifdb_auditor')"
                )
            ).all()
        )
        # The roles are the whole test server's: leave them as the other tests expect.
        conn.execute(text("ALTER ROLE asifdb_app PASSWORD NULL"))
        conn.execute(text("ALTER ROLE asifdb_auditor PASSWORD NULL"))
    setup.dispose()
    assert stored == {"asifdb_app": True, "asifdb_auditor": True}


def test_objects_belong_to_the_owner_role(db_url: str) -> None:
    with _connect(db_url, roles.APP) as conn:
        owners = {
            row[0]
            for row in conn.execute(
                "SELECT pg_get_userbyid(c.relowner) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'S', 'i')"
            )
        }
    assert owners == {roles.OWNER}
