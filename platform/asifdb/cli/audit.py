"""`asifdb audit verify`: check the audit log's hash chain and name its first broken link.

Registered on the `asifdb` app in cli/main.py; reads as the auditor role, calls
services.audit_chain.
"""

from typing import Annotated

import typer
from rich.console import Console

from asifdb.context import platform_at_head
from asifdb.services import audit_chain

app = typer.Typer(help="The audit log's hash chain: verify that no event was changed or removed.")
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@app.command("verify")
def verify(
    expect: Annotated[
        str | None,
        typer.Option(help="A head printed by an earlier run, SEQ:HASH: it must still be there."),
    ] = None,
) -> None:
    """Recompute every audit event's hash in order; exit 1 naming the first broken link."""
    recorded = audit_chain.Link.parse(expect) if expect else None
    with platform_at_head("auditor") as platform, platform.engine.connect() as conn:
        report = audit_chain.verify(conn, expect=recorded)
    if report.broken is not None:
        err.print(
            f"[red]audit chain broken[/] at {report.broken} "
            f"({report.events_checked} events intact before it)",
            highlight=False,
        )
        raise typer.Exit(1)
    console.print(
        f"audit chain intact: {report.events_checked} events, head {report.head} "
        "(record it elsewhere; later: asifdb audit verify --expect SEQ:HASH)",
        highlight=False,
    )
