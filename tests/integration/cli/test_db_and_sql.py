"""The `asifdb` command against real databases: db upgrade/check, read-only sql, bad config."""

import json
from pathlib import Path

import pytest

from tests.samples import asifdb_cli, cli_env


def run(*args: str, database_url: str | None, data_dir: Path | None = None):  # noqa: ANN201
    return asifdb_cli(*args, env=cli_env(database_url or "", data_dir), timeout=120)


def test_db_check_names_the_fix_then_upgrade_brings_it_to_head(empty_db_url: str) -> None:
    behind = run("db", "check", database_url=empty_db_url)
    assert behind.returncode == 1
    assert "asifdb db upgrade" in behind.stderr
    assert "Traceback" not in behind.stderr

    assert run("db", "upgrade", database_url=empty_db_url).returncode == 0

    at_head = run("db", "check", database_url=empty_db_url)
    assert at_head.returncode == 0, at_head.stderr
    assert "at head" in at_head.stdout


def test_sql_prints_json_and_refuses_writes(db_url: str) -> None:
    out = run("sql", "SELECT 1 AS one, 'licence' AS word", "--json", database_url=db_url)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"one": 1, "word": "licence"}]

    table = run("sql", "SELECT count(*) AS n FROM usable_pairs", database_url=db_url)
    assert table.returncode == 0 and "1 row(s)" in table.stdout

    for attack in ("DELETE FROM licenses", "SELECT 1; DROP TABLE pairs", "CREATE TABLE x (a int)"):
        refused = run("sql", attack, database_url=db_url)
        assert refused.returncode == 1, attack
        assert "refused" in refused.stderr and "Traceback" not in refused.stderr
    still = run("sql", "SELECT count(*) AS n FROM pairs", "--json", database_url=db_url)
    assert json.loads(still.stdout) == [{"n": 0}]


def test_unreachable_database_is_a_clear_message() -> None:
    out = run("db", "check", database_url="postgresql://nobody@127.0.0.1:1/none")
    assert out.returncode == 1
    assert "cannot reach the database" in out.stderr and "DATABASE_URL" in out.stderr
    assert "Traceback" not in out.stderr


def test_not_a_postgres_url_is_a_clear_message() -> None:
    out = run("status", database_url="sqlite:///x.db")
    assert out.returncode == 1
    assert "PostgreSQL" in out.stderr and "Traceback" not in out.stderr


def test_database_without_pgvector_is_a_clear_message() -> None:
    # The machine's own PostgreSQL 15 has no pgvector: exactly the case an operator meets.
    system_pg = "postgresql://postgres@127.0.0.1:5432/postgres"
    probe = run("status", database_url=system_pg)
    if "cannot reach" in probe.stderr:
        pytest.fail("the machine's PostgreSQL 15 on 127.0.0.1:5432 is expected to be running")
    out = run("db", "upgrade", database_url=system_pg)
    assert out.returncode == 1
    assert "no pgvector" in out.stderr and "Traceback" not in out.stderr
