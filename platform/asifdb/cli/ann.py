"""`asifdb ann`: build, drop and inspect the image HNSW index that the approximate path reads.

Registered on the `asifdb` app in cli/main.py; parses, calls `anchors.ann_index`, shows progress.
"""

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, TextColumn

from asifdb.anchors import ann_index
from asifdb.context import platform_at_head

app = typer.Typer(
    help="The image HNSW index for method 'ann' (and 'auto' past 1M pairs): build, drop, status."
)
console = Console(soft_wrap=True)


def _print(found: ann_index.IndexStatus, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(found.as_dict(), indent=2) + "\n")
        return
    if found.state == "absent":
        console.print("image index: [bold]absent[/] (queries use the exact scan)")
        return
    console.print(
        f"image index: [bold]{found.state}[/], m = {found.m}, ef_construction = "
        f"{found.ef_construction}, {(found.bytes or 0) / 2**20:,.1f} MiB"
    )


@app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Whether the index is absent, being built, left invalid by a failed build, or ready."""
    with platform_at_head() as platform, platform.engine.connect() as conn:
        found = ann_index.status(conn)
    _print(found, as_json)


@app.command("build")
def build(
    m: Annotated[int, typer.Option(help="HNSW links per node (pgvector's m).")] = 16,
    ef_construction: Annotated[int, typer.Option(help="Candidate list while building.")] = 64,
    memory: Annotated[
        str, typer.Option(help="maintenance_work_mem for the build: the graph should fit.")
    ] = ann_index.BuildParams.memory,
    workers: Annotated[
        int, typer.Option(help="Parallel maintenance workers besides the leader.")
    ] = ann_index.BuildParams.workers,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Build the index concurrently (ingestion and queries go on); nothing to do if it exists."""
    params = ann_index.BuildParams(
        m=m, ef_construction=ef_construction, memory=memory, workers=workers
    )
    # Building and dropping an index is schema work: the set-up role, not the application's.
    with platform_at_head("setup") as platform, _progress(quiet=as_json) as on_progress:
        found = ann_index.build(platform.engine, params, on_progress=on_progress)
    _print(found, as_json)


@app.command("drop")
def drop() -> None:
    """Drop the index: method 'ann' is refused until it is built again; ingestion gets faster."""
    with platform_at_head("setup") as platform:
        existed = ann_index.drop(platform.engine)
    console.print("image index dropped" if existed else "there was no image index")


@contextmanager
def _progress(*, quiet: bool) -> Iterator[Callable[[ann_index.Progress], None] | None]:
    if quiet:
        yield None
        return
    with Progress(
        *Progress.get_default_columns(), TextColumn("{task.fields[phase]}"), console=console
    ) as bar:
        task = bar.add_task("building the image index", total=None, phase="starting")

        def show(reading: ann_index.Progress) -> None:
            total = reading.tuples_total or None
            bar.update(task, total=total, completed=reading.tuples_done, phase=reading.phase)

        yield show
