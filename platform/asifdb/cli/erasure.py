"""`asifdb licenses erase | erasure-report`: erase a revoked licence's data, show the report.

Parse, call asifdb.services.erasure, render; registered on the `licenses` group in cli/main.py.
"""

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from asifdb.context import platform_at_head
from asifdb.services import erasure
from asifdb.wire import to_json

CLI_ACTOR = "cli"

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def erase(
    name: str,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Do not ask: the licence's name is not typed again.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
) -> None:
    """Erase a revoked licence for good: its pairs, embeddings, captions and images leave the
    platform (irreversible), then a report checks that they are gone."""
    with platform_at_head() as platform:
        with platform.sessions() as session:
            preview = erasure.preview(session, licence=name)
        if not preview.erasable and preview.why_not and "already erased" not in preview.why_not:
            err.print(f"[red]error:[/] {preview.why_not}")
            raise typer.Exit(1)
        if not yes and preview.erasable:
            err.print(
                f"Erasing licence [bold]{name}[/] removes for good {preview.pairs} pairs (their "
                f"captions and embeddings) and {preview.images} images; "
                f"{preview.predictions_with_evidence} recorded predictions keep their evidence "
                "as ids and scores only. This cannot be undone."
            )
            typed = typer.prompt("Type the licence's name to erase it")
            if typed.strip() != name:
                err.print("[red]not erased:[/] the name did not match")
                raise typer.Exit(1)
        report = erasure.erase_on(
            platform,
            licence=name,
            reason=reason,
            actor=CLI_ACTOR,
            on_progress=lambda step: err.print(f"[dim]{step}...[/]"),
        )
    _render(report, as_json)
    if not report.passed:
        raise typer.Exit(2)


def erasure_report(
    name: str,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
) -> None:
    """The stored report of a licence's erasure: what was removed, the checks, what remains."""
    with platform_at_head() as platform, platform.sessions() as session:
        report = erasure.report(session, licence=name)
    _render(report, as_json)


def _render(report: erasure.ErasureReport, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(to_json(report))
        return
    verdict = "[green]all checks passed[/]" if report.passed else "[red]a check failed[/]"
    console.print(
        f"licence [bold]{report.license}[/] erased by {report.erased_by} "
        f"({report.status}, model version {report.model_version}): {verdict}"
    )
    console.print(f"reason: {report.reason}")
    removed = Table("removed", "count")
    for kind, count in report.removed.items():
        removed.add_row(kind.replace("_", " "), str(count))
    console.print(removed)
    checks = Table("check", "result", "detail")
    for check in report.checks:
        result = "[green]passed[/]" if check.passed else "[red]FAILED[/]"
        checks.add_row(check.name, result, check.detail)
    console.print(checks)
    console.print("[bold]What the platform cannot erase:[/]")
    for line in report.not_erased:
        console.print(f"- {line}")
