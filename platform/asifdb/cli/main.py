"""The `asifdb` command: the app every command group registers in, `up`, `status`, `sql`, and
the console entry point."""

import json
import logging
import sys
from typing import Annotated

import typer
from rich.table import Table

from asifdb import launcher
from asifdb.broker import broker_url
from asifdb.cli import (
    ann,
    audit,
    curate,
    db,
    encoders,
    erasure,
    jobs,
    keys,
    licenses,
    models,
    predict,
    reencode,
)
from asifdb.cli.shell import (
    console,
    err,
    jsonable,
    platform_as,
    upgrade,
)
from asifdb.context import Platform
from asifdb.db.session import database_url
from asifdb.errors import AsifdbError
from asifdb.services.audit import run_readonly_sql
from asifdb.services.status import platform_status
from asifdb.settings import get_settings
from asifdb.wire import to_json

app = typer.Typer(help="asifdb: a training-free image-text model made of curated pairs.")

# Every command group is a module of this package, registered here and nowhere else.
app.add_typer(db.app, name="db")
app.add_typer(licenses.app, name="licenses")
licenses.app.command("erase")(erasure.erase)
licenses.app.command("erasure-report")(erasure.erasure_report)
app.add_typer(keys.app, name="keys")
app.command()(jobs.ingest)
app.command()(jobs.job)
app.command()(predict.classify)
app.command("eval")(predict.eval_)
app.command()(reencode.reencode)
app.add_typer(curate.app, name="curate")
app.add_typer(ann.app, name="ann")
app.add_typer(audit.app, name="audit")
app.add_typer(encoders.app, name="encoders")
app.add_typer(models.app, name="models")


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help='One read-only statement, e.g. "SELECT ..."')],
    as_json: Annotated[bool, typer.Option("--json", help="Print rows as JSON objects.")] = False,
    max_rows: Annotated[int, typer.Option(help="Return at most this many rows.")] = 1000,
) -> None:
    """Run read-only SQL for audits (views: usable_pairs, prediction_provenance, ...)."""
    platform = platform_as("auditor")
    try:
        platform.require_schema()
        result = run_readonly_sql(engine=platform.engine, query=query, max_rows=max_rows)
    finally:
        platform.close()
    if as_json:
        rows = [
            {c: jsonable(v) for c, v in zip(result.columns, row, strict=True)}
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
    platform = platform_as()
    try:
        url = broker_url(redis_url=platform.settings.redis_url, database_url=platform.url)
        report = platform_status(engine=platform.engine, broker_url=url)
    finally:
        platform.close()
    answer = report.wire()
    if as_json:
        sys.stdout.write(to_json(answer))
    else:
        for part, state in answer.items():
            if isinstance(state, dict):
                mark = (
                    "" if "ok" not in state else ("[green]ok[/]" if state["ok"] else "[red]FAIL[/]")
                )
                details = ", ".join(f"{k}={v}" for k, v in state.items() if k != "ok")
                console.print(f"{part:<11} {mark} {details}")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def up() -> None:
    """Start the platform on its defaults: database, migrations, worker, API and UI."""
    settings = get_settings()
    platform = Platform(settings, role="setup")
    try:
        revision = upgrade(platform)
        console.print(f"database  {platform.engine.url.render_as_string(hide_password=True)}")
        console.print(f"schema    at head {revision}")
        to_run = launcher.services(settings)
        for service in to_run:
            if service.url:
                console.print(f"{service.name:<9} {service.url}")
        console.print("Ctrl-C stops everything; data stays in " + str(settings.data_dir.resolve()))
        # The children connect as the application role, never as the set-up one.
        app_url = database_url(settings, role="app", start_embedded=False)
        code = launcher.run(to_run, {"DATABASE_URL": app_url})
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
