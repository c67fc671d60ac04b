"""The `asifdb` command: parse, call a service, render. No domain logic lives here."""

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.progress import Progress, TextColumn
from rich.table import Table
from sqlalchemy.orm import Session

from asifdb import (
    cli_ann,
    cli_audit,
    cli_curate,
    cli_encoders,
    cli_erasure,
    cli_reencode,
    launcher,
)
from asifdb.broker import broker_url
from asifdb.context import Platform
from asifdb.db import schema
from asifdb.db.models import FINISHED_JOB_STATUSES
from asifdb.db.roles import Role
from asifdb.db.session import database_url
from asifdb.errors import AsifdbError, InvalidInput
from asifdb.schemas.pairs import Job as JobReport
from asifdb.services import classify as classify_service
from asifdb.services import impact, ingestion, keys, labelsets, licences, submit
from asifdb.services.audit import run_readonly_sql
from asifdb.services.classify import K_RANGE, P_RANGE
from asifdb.services.status import platform_status
from asifdb.settings import get_settings
from asifdb.wire import to_json

app = typer.Typer(help="asifdb: a training-free image-text model made of curated pairs.")
db_app = typer.Typer(help="Database schema: upgrade and check.")
app.add_typer(db_app, name="db")
licenses_app = typer.Typer(
    help="Licences: create, list, revoke (with a reason), restore, erase (for good)."
)
app.add_typer(licenses_app, name="licenses")
licenses_app.command("erase")(cli_erasure.erase)
licenses_app.command("erasure-report")(cli_erasure.erasure_report)
keys_app = typer.Typer(help="API keys: create (printed once), list, revoke.")
app.add_typer(keys_app, name="keys")
app.command()(cli_reencode.reencode)
app.add_typer(cli_curate.app, name="curate")
app.add_typer(cli_ann.app, name="ann")
app.add_typer(cli_audit.app, name="audit")
app.add_typer(cli_encoders.app, name="encoders")

CLI_ACTOR = "cli"

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _platform(role: Role = "app") -> Platform:
    return Platform(get_settings(), role=role)


def _upgrade(platform: Platform) -> str:
    """Migrations and the role matrix, with the login roles' passwords when configured."""
    settings = platform.settings
    return schema.upgrade(
        platform.engine,
        app_password=_secret(settings.app_db_password),
        auditor_password=_secret(settings.auditor_db_password),
    )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value else None


@contextmanager
def _session() -> Iterator[Session]:
    """A session in one transaction on a database at head; the server stops if we started it."""
    platform = _platform()
    try:
        platform.require_schema()
        with platform.sessions.begin() as session:
            yield session
    finally:
        platform.close()


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
    """Apply every pending migration (creates pgvector, tables, views, the database roles)."""
    platform = _platform("setup")
    try:
        revision = _upgrade(platform)
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
    platform = _platform("auditor")
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


@licenses_app.command("create")
def licenses_create(
    name: str,
    holder: Annotated[str | None, typer.Option(help="Who holds the rights.")] = None,
    terms_url: Annotated[str | None, typer.Option(help="Where the terms are.")] = None,
) -> None:
    """Create an active licence that pairs can be added under."""
    with _session() as session:
        licence = licences.create(
            session, name=name, actor=CLI_ACTOR, holder=holder, terms_url=terms_url
        )
    console.print(f"licence [bold]{licence.name}[/] (id {licence.id}) is active")


@licenses_app.command("list")
def licenses_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Every licence with its status and pair counts."""
    with _session() as session:
        rows = licences.list_all(session)
    if as_json:
        sys.stdout.write(to_json(rows))
        return
    table = Table("id", "name", "status", "pairs", "usable", "holder", "revoked")
    for r in rows:
        table.add_row(
            str(r.id),
            r.name,
            r.status,
            str(r.pairs),
            str(r.usable_pairs),
            r.holder or "",
            str(r.revoked_at or ""),
        )
    console.print(table)


@licenses_app.command("revoke")
def licenses_revoke(
    name: str,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
) -> None:
    """Revoke a licence: its pairs leave the model in the same transaction."""
    with _session() as session:
        result = licences.revoke(session, licence=name, reason=reason, actor=CLI_ACTOR)
    console.print(
        f"licence [bold]{name}[/] revoked: {result.pairs_removed} pairs left the model "
        f"(model version {result.model_version})"
    )


@licenses_app.command("restore")
def licenses_restore(
    name: str,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit log).")] = None,
) -> None:
    """Restore a revoked licence: its pairs return to the model."""
    with _session() as session:
        result = licences.restore(session, licence=name, actor=CLI_ACTOR, reason=reason)
    console.print(
        f"licence [bold]{name}[/] restored: {result.pairs_restored} pairs are back "
        f"(model version {result.model_version})"
    )


@licenses_app.command("impact")
def licenses_impact(
    name: str,
    sample: Annotated[int, typer.Option(min=0, max=200, help="Predictions to re-run.")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Deletion verification: the licence's pairs, what they carried, re-run without them."""
    platform = _platform()
    try:
        platform.require_schema()
        report = impact.licence_impact(
            sessions=platform.sessions,
            live=platform.live,
            encoders=platform.encoders,
            blobs=platform.blobs,
            licence=name,
            sample=sample,
        )
    finally:
        platform.close()
    if as_json:
        sys.stdout.write(to_json(report))
        return
    lic = report.license
    console.print(
        f"licence [bold]{lic.name}[/] ({lic.status}): {report.pairs} pairs, "
        f"{report.usable_pairs} usable now; influenced {report.predictions_influenced} "
        f"predictions (total contribution {report.total_contribution:.4f})"
    )
    table = Table("prediction", "share", "label then", "label now", "changed")
    for row in report.sample:
        changed = {True: "[red]yes[/]", False: "no", None: row.note or ""}[row.changed]
        table.add_row(
            str(row.prediction_id),
            f"{row.share_of_score or 0:.1%}",
            str(row.label_then),
            row.rerun.label if row.rerun else "",
            changed,
        )
    console.print(table)
    console.print(f"{report.changed} of {report.sample_size} re-run predictions changed")


@app.command()
def classify(
    images: Annotated[list[Path], typer.Argument(help="Image files to classify.")],
    labels: Annotated[str | None, typer.Option(help="Comma-separated classes.")] = None,
    label_set: Annotated[str | None, typer.Option(help="Or a stored label set.")] = None,
    templates: Annotated[str, typer.Option(help="default, cifar or imagenet.")] = "default",
    k: Annotated[int | None, typer.Option(min=K_RANGE[0], max=K_RANGE[1])] = None,
    p: Annotated[float | None, typer.Option(min=P_RANGE[0], max=P_RANGE[1])] = None,
    aggregation: Annotated[str, typer.Option(help="max or mean over templates.")] = "max",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Zero-shot classify images; every prediction is recorded with its evidence."""
    files = [(str(path), _read(path)) for path in images]
    platform = _platform()
    try:
        platform.require_schema()
        options = classify_service.Options.of(platform.settings, k=k, p=p, aggregation=aggregation)
        with platform.sessions.begin() as session:
            candidates = labelsets.candidates(
                session,
                labels=labels.split(",") if labels else None,
                label_set=label_set,
                templates=templates,
            )
            results = classify_service.classify(
                session,
                live=platform.live,
                encoders=platform.encoders,
                images=files,
                candidates=candidates,
                options=options,
                client=CLI_ACTOR,
                channel="cli",
                blobs=platform.blobs,
            )
    finally:
        platform.close()
    if as_json:
        sys.stdout.write(to_json(results))
        return
    for result in results:
        console.print(
            f"[bold]{result.input}[/]: {result.label} ({result.score:.4f}), "
            f"prediction {result.prediction_id}, model version {result.model_version}"
        )
        for evidence in result.evidence[:5]:
            console.print(
                f"  pair {evidence.pair_id:>7} {evidence.contribution:.4f}  "
                f"{evidence.caption}  [{evidence.license}]"
            )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who holds it; recorded as the actor.")],
    role: Annotated[str, typer.Option(help="app, annotator, steward, auditor or admin.")],
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    with _session() as session:
        key = keys.create(session, name=name, role=role, actor=CLI_ACTOR)
    err.print(f"key [bold]{name}[/] ({role}); it is shown only now:")
    sys.stdout.write(key + "\n")


@keys_app.command("list")
def keys_list() -> None:
    """Every key's name, role and state (never the key)."""
    with _session() as session:
        rows = keys.list_all(session)
    table = Table("name", "role", "prefix", "created", "revoked")
    for r in rows:
        table.add_row(
            r.name,
            r.role,
            r.prefix,
            str(r.created_at),
            str(r.revoked_at or ""),
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(name: str) -> None:
    """Revoke an API key; requests with it get 401 from now on."""
    with _session() as session:
        keys.revoke(session, name=name, actor=CLI_ACTOR)
    console.print(f"key [bold]{name}[/] revoked")


@app.command()
def ingest(
    source: Annotated[
        str,
        typer.Argument(
            help="A webdataset/files folder, .tar, .jsonl, or "
            "a folder of class folders (with a template)."
        ),
    ],
    license: Annotated[str, typer.Option("--license", help="Licence the pairs come under.")],
    collection: Annotated[str, typer.Option(help="Collection to add the pairs to.")] = "default",
    kind: Annotated[
        str | None,
        typer.Option(help="webdataset, files, jsonl or class_folders (default: detected)."),
    ] = None,
    caption_template: Annotated[
        str | None, typer.Option(help='For class folders: e.g. "a satellite image of {}".')
    ] = None,
    classnames: Annotated[
        str | None, typer.Option(help="For class folders: a file of folder<TAB>name lines.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=4096)] = ingestion.DEFAULT_BATCH_SIZE,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Follow the job to its end.")
    ] = True,
) -> None:
    """Add pairs from a source as a job; workers encode them (start them with `asifdb up`)."""
    platform = _platform()
    try:
        platform.require_schema()
        done = submit.ingestion_job(
            platform,
            source=source,
            roots=platform.settings.source_roots,
            license_name=license,
            actor=CLI_ACTOR,
            collection=collection,
            kind=kind,
            template=caption_template,
            classnames=classnames,
            batch_size=batch_size,
        )
        job = done.job
        console.print(
            f"job [bold]{job.id}[/]: {job.total} items from {job.source} "
            f"({job.source_kind}) in {done.batches} batches"
        )
        if done.note:
            console.print(f"[yellow]{done.note}[/]")
        if wait:
            report = _follow_job(platform, job.id)
            _print_job(report)
            if report.status == "failed":
                raise typer.Exit(1)
    finally:
        platform.close(keep_server=True)


@app.command()
def job(job_id: int, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A job's progress, counts and rejected items with their reasons."""
    with _session() as session:
        report = ingestion.job_report(session, job_id=job_id)
    if as_json:
        sys.stdout.write(to_json(report))
    else:
        _print_job(report)


def _follow_job(platform: Platform, job_id: int) -> JobReport:
    with Progress(
        *Progress.get_default_columns(), TextColumn("{task.fields[counts]}"), console=console
    ) as progress:
        task = None
        while True:
            with platform.sessions() as session:
                report = ingestion.job_report(session, job_id=job_id, rejects=0)
            counts = (
                f"ready {report.done} · duplicate {report.duplicates} · rejected {report.rejected}"
            )
            if task is None:
                task = progress.add_task(f"job {job_id}", total=report.total, counts=counts)
            progress.update(task, completed=report.processed, counts=counts)
            if report.status in FINISHED_JOB_STATUSES:
                break
            time.sleep(1)
    with platform.sessions() as session:
        return ingestion.job_report(session, job_id=job_id)


def _print_job(report: JobReport) -> None:
    console.print(
        f"job {report.id} [bold]{report.status}[/]: {report.done} ready, "
        f"{report.duplicates} duplicates, {report.rejected} rejected of {report.total}"
    )
    if report.error:
        err.print(f"[red]error:[/] {report.error}")
    for state, rows in (("failed", report.failed_batches), ("retrying", report.retrying_batches)):
        for row in rows:
            start, stop = row.items
            err.print(
                f"  batch {row.batch} (items {start}–{stop - 1}) {state} after "
                f"{row.attempts} tries: {row.error}"
            )
    for code, count in sorted(report.reject_reasons.items()):
        console.print(f"  rejected {count:>6} × {code}")
    for reject in report.rejects:
        console.print(f"  {reject.key}: {reject.reason}")


@app.command()
def up() -> None:
    """Start the platform on its defaults: database, migrations, worker, API and UI."""
    settings = get_settings()
    platform = Platform(settings, role="setup")
    try:
        revision = _upgrade(platform)
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


@app.command("eval")
def eval_(
    folder: Annotated[Path, typer.Argument(help="A folder with one sub-folder of images a class.")],
    classnames: Annotated[
        Path | None, typer.Option(help="folder<TAB>name lines (e.g. wnid to name).")
    ] = None,
    templates: Annotated[
        str, typer.Option(help="default, cifar (18), imagenet (7) or a file, one a line.")
    ] = "default",
    limit: Annotated[int | None, typer.Option(min=1, help="First N images a class.")] = None,
    k: Annotated[int | None, typer.Option(min=K_RANGE[0], max=K_RANGE[1])] = None,
    p: Annotated[float | None, typer.Option(min=P_RANGE[0], max=P_RANGE[1])] = None,
    aggregation: Annotated[str, typer.Option(help="max or mean over templates.")] = "max",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Zero-shot accuracy of the current model on a labelled folder (predictions recorded)."""
    from asifdb.services import evaluation

    platform = _platform()
    try:
        platform.require_schema()
        options = classify_service.Options.of(platform.settings, k=k, p=p, aggregation=aggregation)
        with Progress(TextColumn("{task.description}"), console=err, disable=as_json) as bar:
            task = bar.add_task("classifying")
            result = evaluation.evaluate(
                sessions=platform.sessions,
                live=platform.live,
                encoders=platform.encoders,
                folder=folder,
                roots=platform.settings.source_roots,
                templates=evaluation.read_templates(
                    templates, roots=platform.settings.source_roots
                ),
                classnames=classnames,
                options=options,
                limit_per_class=limit,
                record=True,
                evidence_limit=classify_service.EVIDENCE_SHOWN,
                client=CLI_ACTOR,
                on_batch=lambda done, total: bar.update(
                    task, description=f"classified {done}/{total}"
                ),
            )
    finally:
        platform.close()
    summary = result.summary()
    if as_json:
        sys.stdout.write(to_json(summary))
        return
    table = Table("class", "top-1", "images")
    counts = {c: 0 for c in result.classes}
    for prediction in result.predictions:
        counts[prediction.true_label] += 1
    for name, accuracy in summary.per_class.items():
        table.add_row(name, f"{100 * accuracy:.1f} %", str(counts[name]))
    console.print(table)
    console.print(
        f"top-1 {100 * result.top1:.2f} %, top-5 {100 * result.top5:.2f} % "
        f"(chance {100 * result.chance:.2f} %) on {result.images} images, "
        f"{len(result.classes)} classes, {len(result.templates)} templates"
    )
    console.print(
        f"k = {options.k}, p = {options.p:g}, {options.aggregation} over templates, "
        f"{result.method} top-k, model version {result.model_version} "
        f"({result.usable_pairs} usable pairs)"
    )
    console.print(f"{result.seconds:.1f} s, {summary.images_per_second or 0:.1f} images/s")


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
