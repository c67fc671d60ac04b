"""`asifdb reencode`: switch the model's encoders by re-embedding every pair through the workers.

Registered on the `asifdb` app in cli/main.py; parses, calls `services.reencode`, shows progress.
"""

import time
from typing import Annotated

import typer
from rich.progress import Progress, TextColumn

from asifdb.cli.shell import CLI_ACTOR, console, err
from asifdb.context import Platform, platform_at_head
from asifdb.schemas.encoders import ReencodeReport
from asifdb.services import reencode as reencode_service
from asifdb.services import submit


def reencode(
    image_encoder: Annotated[
        str, typer.Option("--image-encoder", help="e.g. tf_efficientnet_lite0 or timm/<model>.")
    ],
    text_encoder: Annotated[
        str,
        typer.Option("--text-encoder", help="e.g. all-MiniLM-L6-v2 or sentence-transformers/<m>."),
    ],
    batch_size: Annotated[int, typer.Option(min=1, max=4096)] = reencode_service.DEFAULT_BATCH_SIZE,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Follow the re-encode to the switch.")
    ] = False,
) -> None:
    """Re-embed every pair from the blob store with other encoders, then switch the model.

    Queries keep the old encoders' embeddings until every pair is re-encoded; the switch is one
    transaction, and queries and workers follow it at once (no restart). Set
    IMAGE_ENCODER/TEXT_ENCODER to the same names for a fresh database to start there.
    """
    with platform_at_head(keep_server=True) as platform:  # the workers need the server
        done = submit.reencode_job(
            platform,
            image_encoder=image_encoder,
            text_encoder=text_encoder,
            actor=CLI_ACTOR,
            batch_size=batch_size,
        )
        job = done.job
        submitted(
            platform,
            done,
            f"re-encode [bold]{job.id}[/]: {job.total} pairs to {job.image_encoder} + "
            f"{job.text_encoder} in {done.batches} batches",
            wait=wait,
        )


def submitted(platform: Platform, done: submit.Submitted, headline: str, *, wait: bool) -> None:
    """What a re-encode's submission prints (`reencode`, `models add / build / default`); with
    `wait`, its progress to the end (exit 1 unless it ends done)."""
    console.print(headline)
    if done.note:
        console.print(f"[yellow]{done.note}[/]")
    if wait:
        report = follow(platform, done.job.id)
        print_report(report)
        if report.status != "done":
            raise typer.Exit(1)


def follow(platform: Platform, reencode_id: int) -> ReencodeReport:
    with Progress(
        *Progress.get_default_columns(), TextColumn("{task.fields[counts]}"), console=console
    ) as progress:
        task = None
        while True:
            with platform.sessions() as session:
                report = reencode_service.report(session, reencode_id=reencode_id)
            counts = f"encoded {report.done} · missing blobs {report.missing}"
            if task is None:
                task = progress.add_task(
                    f"re-encode {reencode_id}", total=report.total, counts=counts
                )
            progress.update(task, total=report.total, completed=report.processed, counts=counts)
            if report.status in ("done", "failed", "cancelled"):
                return report
            time.sleep(1)


def print_report(report: ReencodeReport) -> None:
    console.print(
        f"re-encode {report.id} [bold]{report.status}[/]: {report.done} of "
        f"{report.total} pairs re-encoded, {report.missing} without a blob"
    )
    if report.switched_version is not None:
        console.print(
            f"model version {report.switched_version} uses {report.image_encoder} + "
            f"{report.text_encoder}"
        )
    if report.error:
        err.print(f"[red]error:[/] {report.error}")
