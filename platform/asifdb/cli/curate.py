"""`asifdb curate ...`: find mismatched, near-duplicate and harmful pairs, and act on them.

Parse, call asifdb.services.curation, render; registered in cli/main.py with one `add_typer`.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from asifdb.context import Platform, platform_at_head
from asifdb.services import curation, evaluation
from asifdb.services.classify import Options
from asifdb.wire import to_json

app = typer.Typer(help="Curation: mismatched captions, near-duplicates, harmful pairs; act.")
ACTOR = "cli"
console = Console(soft_wrap=True)

Ids = Annotated[list[int], typer.Argument(help="Pair ids.")]
Reason = Annotated[str | None, typer.Option(help="Why (kept in the audit log).")]
Json = Annotated[bool, typer.Option("--json", help="Print as JSON.")]
Limit = Annotated[int, typer.Option(min=1, max=curation.MAX_PAGE, help="Rows per page.")]
Offset = Annotated[int, typer.Option(min=0, help="Rows to skip (the page's start).")]


@contextmanager
def _session() -> Iterator[tuple[Platform, Session]]:
    with platform_at_head() as platform, platform.sessions.begin() as session:
        yield platform, session


def _print_json(value: Any) -> None:
    sys.stdout.write(to_json(value))


def _short(caption: str, width: int = 60) -> str:
    return caption if len(caption) <= width else caption[: width - 1] + "…"


@app.command("fit")
def fit(
    full: Annotated[bool, typer.Option(help="Score every usable pair again.")] = False,
    k: Annotated[int | None, typer.Option(min=1, help="Anchors kept (default: FIT_K).")] = None,
    p: Annotated[
        float | None, typer.Option(min=1, help="Exponent (default: FIT_P of the space).")
    ] = None,
) -> None:
    """Score how well each caption fits its image (new pairs only, unless --full)."""
    with _session() as (platform, session):
        result = curation.refresh_fit(
            session,
            live=platform.live,
            k=k,
            p=p,
            full=full,
        )
    console.print(
        f"scored {result.scored} of {result.usable_pairs} usable pairs in "
        f"{curation.SPACES[result.aligned]}, k = {result.k}, p = {result.p:g} "
        f"(model version {result.model_version}, "
        f"{result.seconds} s)"
    )


@app.command("mismatches")
def mismatches(limit: Limit = 20, offset: Offset = 0, as_json: Json = False) -> None:
    """Pairs whose caption fits their image worst, lowest fit first."""
    with _session() as (_, session):
        page = curation.mismatches(session, limit=limit, offset=offset)
    if as_json:
        _print_json(page)
        return
    table = Table("pair", "fit", "rank", "margin", "licence", "caption", "marked")
    for r in page.items:
        table.add_row(
            str(r.pair_id),
            f"{r.fit:.2f}",
            f"{r.rank}/{r.compared + 1}",
            f"{r.margin:+.3f}",
            r.license,
            _short(r.caption),
            "yes" if r.marked else "",
        )
    console.print(table)
    console.print(
        f"{page.scored} of {page.usable_pairs} usable pairs scored; "
        f"{page.unscored} unscored (run `asifdb curate fit`)"
    )
    if page.mixed_spaces:
        console.print(f"{curation.MIXED_SPACES}: {page.scored_in}")


@app.command("find-duplicates")
def find_duplicates(
    threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Image cosine for near-duplicates.")
    ] = curation.DUPLICATE_THRESHOLD,
) -> None:
    """Group the usable pairs whose images are near-identical (recomputed whole)."""
    with _session() as (platform, session):
        result = curation.refresh_duplicates(session, live=platform.live, threshold=threshold)
    console.print(
        f"{result.groups} groups, {result.pairs_in_groups} pairs, cosine >= "
        f"{result.threshold} (model version {result.model_version}, {result.seconds} s)"
    )


@app.command("duplicates")
def duplicates(limit: Limit = 20, offset: Offset = 0, as_json: Json = False) -> None:
    """Groups of near-duplicate pairs, most similar first; the keeper is listed first."""
    with _session() as (_, session):
        page = curation.duplicates(session, limit=limit, offset=offset)
    if as_json:
        _print_json(page)
        return
    table = Table("group", "pair", "cosine", "keeper", "size", "licence", "caption")
    for g in page.groups:
        for m in g.pairs:
            table.add_row(
                str(g.group_id),
                str(m.pair_id),
                f"{m.cosine:.3f}",
                "keep" if m.keeper else "",
                f"{m.width}x{m.height}",
                m.license,
                _short(m.caption),
            )
    console.print(table)
    console.print(f"{page.total_groups} groups in all")


@app.command("value")
def value(
    folder: Annotated[Path, typer.Argument(help="A folder with one sub-folder of images a class.")],
    classnames: Annotated[Path | None, typer.Option(help="folder<TAB>name lines.")] = None,
    templates: Annotated[str, typer.Option(help="default, cifar or imagenet.")] = "default",
    limit: Annotated[int | None, typer.Option(min=1, help="First N images a class.")] = None,
    exclude: Annotated[
        str, typer.Option(help="What if: comma-separated counts of harmful pairs to exclude.")
    ] = ",".join(map(str, curation.WHAT_IF_COUNTS)),
    top: Annotated[int, typer.Option(min=1, max=curation.MAX_PAGE)] = 10,
    model: Annotated[
        str | None, typer.Option(help="A named model (asifdb models list); default: the default.")
    ] = None,
    as_json: Json = False,
) -> None:
    """Each pair's value on a labelled folder, and accuracy without the most harmful (dry run)."""
    counts = tuple(int(c) for c in exclude.split(",") if c.strip())
    with _session() as (platform, session):
        labelled = evaluation.read_folder(
            folder,
            roots=platform.settings.source_roots,
            classnames=classnames,
            limit_per_class=limit,
            max_images=platform.settings.max_value_images,
        )
        handle = platform.model(model)
        report = curation.pair_values(
            session,
            live=handle.live,
            encoders=handle.encoders,
            labelled=labelled,
            templates=templates,
            options=Options.of(platform.settings, model=handle.ref),
            counts=counts,
            top=top,
        )
    if as_json:
        _print_json(report)
        return
    for side, valued in (("harmful", report.harmful), ("helpful", report.helpful)):
        table = Table("pair", "value", "licence", "caption", title=f"most {side}")
        for r in valued:
            table.add_row(str(r.pair_id), f"{r.value:+.3f}", r.license, r.caption)
        console.print(table)
    curve = Table("excluded", "accuracy (found on)", "accuracy (held out)", title="what if")
    for row in report.what_if:
        curve.add_row(
            str(row.excluded),
            f"{row.accuracy_found_on:.1%}",
            f"{row.accuracy_held_out:.1%}",
        )
    console.print(curve)
    console.print(
        f"values found on {report.images_found_on} images, accuracy held out on "
        f"{report.images_held_out}; nothing changed in the model (a dry run)"
    )


@app.command("mark")
def mark(ids: Ids, reason: Reason = None) -> None:
    """Mark pairs for review."""
    with _session() as (_, session):
        result = curation.mark(session, pair_ids=ids, actor=ACTOR, reason=reason)
    console.print(f"{result.marked} marked for review ({result.already_marked} already)")


@app.command("unmark")
def unmark(ids: Ids) -> None:
    """Take pairs off the review queue."""
    with _session() as (_, session):
        result = curation.unmark(session, pair_ids=ids, actor=ACTOR)
    console.print(f"{result.unmarked} taken off the review queue")


@app.command("reviews")
def reviews(limit: Limit = 50, offset: Offset = 0, as_json: Json = False) -> None:
    """The review queue, oldest mark first."""
    with _session() as (_, session):
        page = curation.reviews(session, limit=limit, offset=offset)
    if as_json:
        _print_json(page)
        return
    table = Table("pair", "status", "usable", "licence", "marked by", "reason", "caption")
    for r in page.items:
        table.add_row(
            str(r.pair_id),
            r.status,
            "yes" if r.usable else "no",
            r.license,
            r.marked_by,
            r.reason or "",
            _short(r.caption),
        )
    console.print(table)
    console.print(f"{page.total} marked in all")


@app.command("reject")
def reject(
    ids: Ids, reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")]
) -> None:
    """Reject pairs: they leave the model now (undo with `asifdb curate restore`)."""
    with _session() as (_, session):
        result = curation.reject(session, pair_ids=ids, actor=ACTOR, reason=reason)
    console.print(
        f"{result.rejected} rejected, {result.pairs_removed} left the model "
        f"(model version {result.model_version})"
    )


@app.command("restore")
def restore(ids: Ids, reason: Reason = None) -> None:
    """Undo a rejection: the pairs return to the model."""
    with _session() as (_, session):
        result = curation.restore(session, pair_ids=ids, actor=ACTOR, reason=reason)
    console.print(
        f"{result.restored} restored, {result.pairs_returned} back in the model "
        f"(model version {result.model_version})"
    )


@app.command("revoke")
def revoke(
    ids: Ids, reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")]
) -> None:
    """Revoke the licence(s) of these pairs: every pair under them leaves the model."""
    with _session() as (_, session):
        result = curation.revoke_licences(session, pair_ids=ids, actor=ACTOR, reason=reason)
    for r in result.revoked:
        console.print(
            f"licence [bold]{r.license}[/] revoked: {r.pairs_removed} pairs left the model "
            f"(model version {r.model_version})"
        )
    if not result.revoked:
        console.print("their licences were already revoked")
