"""`asifdb db`: the database schema (upgrade, check)."""

import typer

from asifdb.cli.shell import console, platform_as, upgrade

app = typer.Typer(help="Database schema: upgrade and check.")


@app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration (creates pgvector, tables, views, the database roles)."""
    platform = platform_as("setup")
    try:
        revision = upgrade(platform)
        console.print(f"schema at head [bold]{revision}[/]")
    finally:
        platform.close()


@app.command("check")
def db_check() -> None:
    """Exit non-zero, naming the fix, unless the schema is at the single head."""
    platform = platform_as()
    try:
        revision = platform.require_schema()
        console.print(f"schema at head [bold]{revision}[/]")
    finally:
        platform.close()
