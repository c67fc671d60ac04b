"""`asifdb encoders list`: the encoders this platform knows, where their weights come from, and
whether they load here without a network. Registered on the `asifdb` app in cli/main.py."""

import sys
from typing import Annotated

import typer
from rich.console import Console

from asifdb.encoders.registry import listed
from asifdb.wire import to_json

app = typer.Typer(help="The encoders the platform knows: name, modality, width, weights.")
console = Console(soft_wrap=True)


@app.command("list")
def list_encoders(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Every known encoder (with the command that installs a missing one), and the name forms
    of a local folder and of the hubs."""
    rows = listed()
    if as_json:
        sys.stdout.write(to_json(rows))
        return
    for r in rows:
        offline = "[green]offline here[/]" if r.offline else "[red]not offline here[/]"
        width = f"{r.dim}-d" if r.dim else "its own width"
        console.print(f"[bold]{r.name}[/]  {r.modality}, {width}, {offline}")
        size = f" ({r.size_mb} MB)" if r.size_mb else ""
        console.print(f"    weights: {r.weights}{size}")
        if r.install:
            console.print(f"    install: {r.install}")
        if r.aliases:
            console.print(f"    short names: {', '.join(r.aliases)}")
