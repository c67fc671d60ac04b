"""`asifdb classify` and `asifdb eval`: zero-shot classification, and accuracy on a labelled
folder."""

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, TextColumn
from rich.table import Table

from asifdb.cli.shell import CLI_ACTOR, console, err, read_file
from asifdb.context import platform_at_head
from asifdb.services import classify as classify_service
from asifdb.services import labelsets
from asifdb.services.classify import K_RANGE, P_RANGE
from asifdb.wire import to_json


def classify(
    images: Annotated[list[Path], typer.Argument(help="Image files to classify.")],
    labels: Annotated[str | None, typer.Option(help="Comma-separated classes.")] = None,
    label_set: Annotated[str | None, typer.Option(help="Or a stored label set.")] = None,
    templates: Annotated[str, typer.Option(help="default, cifar or imagenet.")] = "default",
    k: Annotated[int | None, typer.Option(min=K_RANGE[0], max=K_RANGE[1])] = None,
    p: Annotated[float | None, typer.Option(min=P_RANGE[0], max=P_RANGE[1])] = None,
    aggregation: Annotated[str, typer.Option(help="max or mean over templates.")] = "max",
    model: Annotated[
        str | None, typer.Option(help="A named model (asifdb models list); default: the default.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Zero-shot classify images; every prediction is recorded with its evidence."""
    files = [(str(path), read_file(path)) for path in images]
    with platform_at_head() as platform:
        handle = platform.model(model)
        options = classify_service.Options.of(
            platform.settings, k=k, p=p, aggregation=aggregation, model=handle.ref
        )
        with platform.sessions() as session:  # read before the query's own snapshot
            candidates = labelsets.candidates(
                session,
                labels=labels.split(",") if labels else None,
                label_set=label_set,
                templates=templates,
            )
        with platform.sessions.begin() as session:
            results = classify_service.classify(
                session,
                live=handle.live,
                encoders=handle.encoders,
                images=files,
                candidates=candidates,
                options=options,
                client=CLI_ACTOR,
                channel="cli",
                blobs=platform.blobs,
            )
    if as_json:
        sys.stdout.write(to_json(results))
        return
    for result in results:
        console.print(
            f"[bold]{result.input}[/]: {result.label} ({result.score:.4f}), "
            f"prediction {result.prediction_id}, model {result.model} at version "
            f"{result.model_version}"
        )
        for evidence in result.evidence[:5]:
            console.print(
                f"  pair {evidence.pair_id:>7} {evidence.contribution:.4f}  "
                f"{evidence.caption}  [{evidence.license}]"
            )


def eval_(
    folder: Annotated[Path, typer.Argument(help="A folder with one sub-folder of images a class.")],
    classnames: Annotated[
        Path | None, typer.Option(help="folder<TAB>name lines (e.g. wnid to name).")
    ] = None,
    templates: Annotated[
        str, typer.Option(help="default, cifar (18), imagenet (7) or a file, one a line.")
    ] = "default",
    limit: Annotated[int | None, typer.Option(min=1, help="First N images a class.")] = None,
    k: Annotated[int | None, typer.Option(min=K_RANGE[0], max=K_RANGE[1])] = None,
    p: Annotated[float | None, typer.Option(min=P_RANGE[0], max=P_RANGE[1])] = None,
    aggregation: Annotated[str, typer.Option(help="max or mean over templates.")] = "max",
    model: Annotated[
        str | None, typer.Option(help="A named model (asifdb models list); default: the default.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Zero-shot accuracy of the current model on a labelled folder (predictions recorded)."""
    from asifdb.services import evaluation

    with platform_at_head() as platform:
        handle = platform.model(model)
        options = classify_service.Options.of(
            platform.settings, k=k, p=p, aggregation=aggregation, model=handle.ref
        )
        with Progress(TextColumn("{task.description}"), console=err, disable=as_json) as bar:
            task = bar.add_task("classifying")
            result = evaluation.evaluate(
                sessions=platform.sessions,
                live=handle.live,
                encoders=handle.encoders,
                folder=folder,
                roots=platform.settings.source_roots,
                templates=evaluation.read_templates(
                    templates, roots=platform.settings.source_roots
                ),
                classnames=classnames,
                options=options,
                limit_per_class=limit,
                record=True,
                evidence_limit=classify_service.EVIDENCE_SHOWN,
                client=CLI_ACTOR,
                on_batch=lambda done, total: bar.update(
                    task, description=f"classified {done}/{total}"
                ),
            )
    summary = result.summary()
    if as_json:
        sys.stdout.write(to_json(summary))
        return
    table = Table("class", "top-1", "images")
    counts = {c: 0 for c in result.classes}
    for prediction in result.predictions:
        counts[prediction.true_label] += 1
    for name, accuracy in summary.per_class.items():
        table.add_row(name, f"{100 * accuracy:.1f} %", str(counts[name]))
    console.print(table)
    console.print(
        f"top-1 {100 * result.top1:.2f} %, top-5 {100 * result.top5:.2f} % "
        f"(chance {100 * result.chance:.2f} %) on {result.images} images, "
        f"{len(result.classes)} classes, {len(result.templates)} templates"
    )
    console.print(
        f"k = {options.k}, p = {options.p:g}, {options.aggregation} over templates, "
        f"{result.method} top-k, model version {result.model_version} "
        f"({result.usable_pairs} usable pairs)"
    )
    console.print(f"{result.seconds:.1f} s, {summary.images_per_second or 0:.1f} images/s")
