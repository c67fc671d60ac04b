"""`asifdb licenses`: create, list, revoke, restore, the impact report, erase and its report."""

import sys
from typing import Annotated

import typer
from rich.table import Table

from asifdb.cli.shell import CLI_ACTOR, console, session_at_head
from asifdb.context import platform_at_head
from asifdb.services import impact, licences
from asifdb.wire import to_json

app = typer.Typer(help="Licences: create, list, revoke (with a reason), restore, erase (for good).")


@app.command("create")
def licenses_create(
    name: str,
    holder: Annotated[str | None, typer.Option(help="Who holds the rights.")] = None,
    terms_url: Annotated[str | None, typer.Option(help="Where the terms are.")] = None,
) -> None:
    """Create an active licence that pairs can be added under."""
    with session_at_head() as session:
        licence = licences.create(
            session, name=name, actor=CLI_ACTOR, holder=holder, terms_url=terms_url
        )
    console.print(f"licence [bold]{licence.name}[/] (id {licence.id}) is active")


@app.command("list")
def licenses_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Every licence with its status and pair counts."""
    with session_at_head() as session:
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


@app.command("revoke")
def licenses_revoke(
    name: str,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
) -> None:
    """Revoke a licence: its pairs leave the model in the same transaction."""
    with session_at_head() as session:
        result = licences.revoke(session, licence=name, reason=reason, actor=CLI_ACTOR)
    console.print(
        f"licence [bold]{name}[/] revoked: {result.pairs_removed} pairs left the model "
        f"(model version {result.model_version})"
    )


@app.command("restore")
def licenses_restore(
    name: str,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit log).")] = None,
) -> None:
    """Restore a revoked licence: its pairs return to the model."""
    with session_at_head() as session:
        result = licences.restore(session, licence=name, actor=CLI_ACTOR, reason=reason)
    console.print(
        f"licence [bold]{name}[/] restored: {result.pairs_restored} pairs are back "
        f"(model version {result.model_version})"
    )


@app.command("impact")
def licenses_impact(
    name: str,
    sample: Annotated[int, typer.Option(min=0, max=200, help="Predictions to re-run.")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Deletion verification: the licence's pairs, what they carried, re-run without them."""
    with platform_at_head() as platform:
        report = impact.licence_impact(
            sessions=platform.sessions,
            model_of=platform.model,
            blobs=platform.blobs,
            licence=name,
            sample=sample,
        )
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
