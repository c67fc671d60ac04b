"""`asifdb keys`: API keys (create, printed once; list; revoke)."""

import sys
from typing import Annotated

import typer
from rich.table import Table

from asifdb.cli.shell import CLI_ACTOR, console, err, session_at_head
from asifdb.services import keys

app = typer.Typer(help="API keys: create (printed once), list, revoke.")


@app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who holds it; recorded as the actor.")],
    role: Annotated[str, typer.Option(help="app, annotator, steward, auditor or admin.")],
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    with session_at_head() as session:
        key = keys.create(session, name=name, role=role, actor=CLI_ACTOR)
    err.print(f"key [bold]{name}[/] ({role}); it is shown only now:")
    sys.stdout.write(key + "\n")


@app.command("list")
def keys_list() -> None:
    """Every key's name, role and state (never the key)."""
    with session_at_head() as session:
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


@app.command("revoke")
def keys_revoke(name: str) -> None:
    """Revoke an API key; requests with it get 401 from now on."""
    with session_at_head() as session:
        keys.revoke(session, name=name, actor=CLI_ACTOR)
    console.print(f"key [bold]{name}[/] revoked")
