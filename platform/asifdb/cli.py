"""The `asifdb` command: parse, call a service, render. No domain logic lives here."""

import json
import logging
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from asifdb import launcher
from asifdb.broker import broker_url
from asifdb.context import Platform
from asifdb.db import schema
from asifdb.errors import AsifdbError
from asifdb.services.audit import run_readonly_sql
from asifdb.services.status import platform_status
from asifdb.settings import get_settings

app = typer.Typer(help="asifdb: a training-free image-text model made of curated pairs.")
db_app = typer.Typer(help="Database schema: upgrade and check.")
app.add_typer(db_app, name="db")

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _platform() -> Platform:
    return Platform(get_settings())


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return (
        value
        if isinstance(value, str | int | float | bool | type(None) | list | dict)
        else str(value)
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration (creates pgvector, tables, HNSW indexes, views)."""
    platform = _platform()
    try:
        revision = schema.upgrade(platform.engine)
        console.print(f"schema at head [bold]{revision}[/]")
    finally:
        platform.close()


@db_app.command("check")
def db_check() -> None:
    """Exit non-zero, naming the fix, unless the schema is at the single head."""
    platform = _platform()
    try:
        revision = platform.require_schema()
        console.print(f"schema at head [bold]{revision}[/]")
    finally:
        platform.close()


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help='One read-only statement, e.g. "SELECT ..."')],
    as_json: Annotated[bool, typer.Option("--json", help="Print rows as JSON objects.")] = False,
    max_rows: Annotated[int, typer.Option(help="Return at most this many rows.")] = 1000,
) -> None:
    """Run read-only SQL for audits (views: usable_pairs, prediction_provenance, ...)."""
    platform = _platform()
    try:
        platform.require_schema()
        result = run_readonly_sql(engine=platform.engine, query=query, max_rows=max_rows)
    finally:
        platform.close()
    if as_json:
        rows = [
            {c: _jsonable(v) for c, v in zip(result.columns, row, strict=True)}
            for row in result.rows
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        table = Table(*result.columns)
        for row in result.rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)
        console.print(f"{len(result.rows)} row(s)")
    if result.truncated:
        err.print(f"[yellow]only the first {max_rows} rows shown: raise --max-rows[/]")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Report database, pgvector, migrations, broker and model state; non-zero if not ok."""
    platform = _platform()
    try:
        url = broker_url(redis_url=platform.settings.redis_url, database_url=platform.url)
        report = platform_status(engine=platform.engine, broker_url=url)
    finally:
        platform.close()
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
    else:
        for part, state in report.items():
            if isinstance(state, dict):
                mark = (
                    "" if "ok" not in state else ("[green]ok[/]" if state["ok"] else "[red]FAIL[/]")
                )
                details = ", ".join(f"{k}={v}" for k, v in state.items() if k != "ok")
                console.print(f"{part:<11} {mark} {details}")
    if not report["ok"]:
        raise typer.Exit(1)


@app.command()
def up() -> None:
    """Start the platform on its defaults: database, migrations, worker, API and UI."""
    settings = get_settings()
    platform = Platform(settings)
    try:
        revision = schema.upgrade(platform.engine)
        console.print(f"database  {platform.engine.url.render_as_string(hide_password=True)}")
        console.print(f"schema    at head {revision}")
        to_run = launcher.services(settings)
        for service in to_run:
            if service.url:
                console.print(f"{service.name:<9} {service.url}")
        console.print("Ctrl-C stops everything; data stays in " + str(settings.data_dir.resolve()))
        code = launcher.run(to_run, {"DATABASE_URL": platform.url})
    finally:
        platform.close()
    raise typer.Exit(code)


def main() -> None:
    """Console entry point: domain errors become one clear line and exit code 1."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("pgserver", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        app()
    except AsifdbError as exc:
        err.print(f"[red]error:[/] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
