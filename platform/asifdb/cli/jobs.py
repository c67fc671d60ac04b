"""`asifdb ingest` and `asifdb job`: add pairs from a source as a job, and follow it."""

import sys
import time
from typing import Annotated

import typer
from rich.progress import Progress, TextColumn

from asifdb.cli.shell import CLI_ACTOR, console, err, session_at_head
from asifdb.context import Platform, platform_at_head
from asifdb.db.models import FINISHED_JOB_STATUSES
from asifdb.schemas.pairs import Job as JobReport
from asifdb.services import ingestion, submit
from asifdb.wire import to_json


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
    with platform_at_head(keep_server=True) as platform:
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


def job(job_id: int, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A job's progress, counts and rejected items with their reasons."""
    with session_at_head() as session:
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
