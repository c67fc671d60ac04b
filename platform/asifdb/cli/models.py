"""`asifdb models`: several models over one collection (list, add, build, default).

Registered on the `asifdb` app in cli/main.py; parses, calls `services.models` / `submit`,
renders. A model's build runs through the workers like a re-encode (`asifdb reencode`
switches the default model's encoders; `models add` builds a named model beside it).
"""

import sys
from typing import Annotated

import typer
from rich.table import Table

from asifdb.cli.reencode import submitted
from asifdb.cli.shell import CLI_ACTOR, console
from asifdb.context import platform_at_head
from asifdb.services import models, submit
from asifdb.services import reencode as reencode_service
from asifdb.services.classify import K_RANGE, P_RANGE
from asifdb.wire import to_json

app = typer.Typer(help="Models over the collection: the default one and named ones.")

BatchSize = Annotated[int, typer.Option(min=1, max=4096)]
Wait = Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the build to its end.")]


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every model: encoders, k, p, pairs, status (a named one answers once ready)."""
    with platform_at_head() as platform, platform.sessions() as session:
        rows = models.list_models(session, platform.settings)
    if as_json:
        sys.stdout.write(to_json(rows))
        return
    table = Table("model", "status", "image encoder", "text encoder", "k", "p", "pairs", "of")
    for row in rows:
        table.add_row(
            row.name + (" (default)" if row.default else ""),
            row.status + (f": {row.error}" if row.error else ""),
            row.image_encoder or "-",
            row.text_encoder or "-",
            str(row.k),
            f"{row.p:g}",
            str(row.usable_pairs),
            str(row.expected_pairs) + (f" ({row.collection})" if row.collection else ""),
        )
    console.print(table)


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="lowercase letters, digits, '.', '_', '-'")],
    image_encoder: Annotated[str, typer.Option("--image-encoder")],
    text_encoder: Annotated[str, typer.Option("--text-encoder")],
    k: Annotated[int | None, typer.Option(min=K_RANGE[0], max=K_RANGE[1])] = None,
    p: Annotated[float | None, typer.Option(min=P_RANGE[0], max=P_RANGE[1])] = None,
    collection: Annotated[str | None, typer.Option(help="Only this collection's pairs.")] = None,
    batch_size: BatchSize = reencode_service.DEFAULT_BATCH_SIZE,
    wait: Wait = False,
) -> None:
    """A named model beside the default one, built by the workers from the pairs' blobs; the
    default model's answers do not change. Query it with `--model NAME` once ready."""
    _submit(
        name,
        wait,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        k=k,
        p=p,
        collection=collection,
        batch_size=batch_size,
    )


@app.command()
def build(
    name: Annotated[str, typer.Argument()],
    batch_size: BatchSize = reencode_service.DEFAULT_BATCH_SIZE,
    wait: Wait = False,
) -> None:
    """Embed, by a named model's encoders, the pairs it lacks (those added since its build)."""
    _submit(name, wait, batch_size=batch_size)


@app.command()
def default(
    name: Annotated[str, typer.Argument()],
    batch_size: BatchSize = reencode_service.DEFAULT_BATCH_SIZE,
    wait: Wait = False,
) -> None:
    """Make a ready named model the default (its encoders, k and p), in one switch; queries
    and workers follow at once (no restart)."""
    _submit(name, wait, batch_size=batch_size, make_default=True)


def _submit(name: str, wait: bool, **options: object) -> None:
    with platform_at_head(keep_server=True) as platform:  # the workers need the server
        done = submit.model_job(platform, name=name, actor=CLI_ACTOR, **options)  # type: ignore[arg-type]
        job = done.job
        submitted(
            platform,
            done,
            f"model [bold]{name}[/]: re-encode {job.id}, {job.total} pairs by "
            f"{job.image_encoder} + {job.text_encoder} in {done.batches} batches",
            wait=wait,
        )
