"""Experiment 8 (the paper's Table 2, here): every offline image × text encoder pair as a
named model over the same anchor pairs, built by the platform's re-encode batches, evaluated
through `services.evaluation` on CIFAR-10 test and Tiny-ImageNet val, then with +100 and
+1,000 CIFAR-10 training pairs (ingested once, embedded for every model by the ingest), then
with those pairs revoked (every model's predictions checked against before); and each
encoder's throughput on the same inputs, side by side in one run.

    .venv/bin/python -m asifdb.experiments.backbones   # needs `scripts/setup --zoo` for MPNet
"""

import logging
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
from sqlalchemy import text

from asifdb.context import Platform
from asifdb.encoders import Encoder, ImageInput
from asifdb.experiments import runner
from asifdb.experiments.anchors_db import ACTOR, ROOT, ingest
from asifdb.experiments.datasets import CIFAR_TEST, CIFAR_TRAIN, TINY_VAL, LabelledSet
from asifdb.experiments.domain_pairs import TEMPLATE, _compare, _revoke, _sample
from asifdb.experiments.memo_encoder import MemoImageEncoder
from asifdb.services import models, reencode
from asifdb.services.classify import Options
from asifdb.services.evaluation import Evaluation
from asifdb.services.model import Encoders

log = logging.getLogger(__name__)

IMAGE_ENCODERS = ("tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2")
TEXT_ENCODERS = ("all-MiniLM-L6-v2", "all-mpnet-base-v2")


@dataclass(frozen=True)
class Backbone:
    """One model of the table: its name (`default` for the platform's) and encoders."""

    name: str
    image_encoder: str  # canonical names, as pairs record them
    text_encoder: str


def _short(name: str) -> str:
    """lite1, minilm-l6-v2, mpnet-base-v2: a canonical name's model, lower case."""
    model = name.split("@")[0].split("/")[-1].lower()
    return model.removeprefix("tf_efficientnet_").removeprefix("all-")


def backbones(platform: Platform, images: Sequence[str], texts: Sequence[str]) -> list[Backbone]:
    """The default model first, then every other image × text pair (by short names)."""
    default = platform.encoders
    out = [Backbone(models.DEFAULT, default.image.name, default.text.name)]
    for image in images:
        for caption in texts:
            i, t = reencode.canonical_names(image_encoder=image, text_encoder=caption)
            if (i, t) != (default.image.name, default.text.name):
                out.append(Backbone(f"{_short(i)}-{_short(t)}", i, t))
    # Models that need a new encoder on one side only go first: later ones then find both
    # sides' embeddings stored and encode nothing.
    return out[:1] + sorted(out[1:], key=lambda b: b.image_encoder != default.image.name)


class _Encoders:
    """What the experiment hands the platform: its encoders by name, loaded once; for the
    re-encode and the ingest the plain ones, for evaluation image encoders that remember test
    images (keyed by the image bytes, as the other experiments' does)."""

    def __init__(self, platform: Platform, memo_dir: Path) -> None:
        self.platform = platform
        self.memo_dir = memo_dir
        self.memos: dict[str, MemoImageEncoder] = {}

    def plain(self, image_encoder: str | None, text_encoder: str | None) -> Encoders:
        loaded = self.platform.encoders_of(image_encoder, text_encoder)
        image = loaded.image
        if isinstance(image, MemoImageEncoder):  # the default's, remembering test images
            image = image.encoder
        return Encoders(image=image, text=loaded.text)

    def for_eval(self, backbone: Backbone) -> Encoders:
        plain = self.plain(backbone.image_encoder, backbone.text_encoder)
        image: Encoder[ImageInput] = self.platform.encoders.image
        if backbone.image_encoder != image.name:
            if backbone.image_encoder not in self.memos:
                path = self.memo_dir / f"memo-images-{_short(backbone.image_encoder)}.npz"
                self.memos[backbone.image_encoder] = MemoImageEncoder(plain.image, path)
            image = self.memos[backbone.image_encoder]
        return Encoders(image=image, text=plain.text)

    def save(self) -> None:
        for memo in self.memos.values():
            memo.save()


def _build(platform: Platform, loaded: _Encoders, backbone: Backbone, k: int, p: float) -> dict:
    """Add the named model and run its re-encode batches here, as a worker would."""
    started = time.perf_counter()
    with platform.sessions.begin() as session:
        job = models.add(
            session,
            name=backbone.name,
            image_encoder=backbone.image_encoder,
            text_encoder=backbone.text_encoder,
            k=k,
            p=p,
            collection=None,
            actor=ACTOR,
            batch_size=256,
        )
        job_id = job.id
        batches = reencode.BATCHES.pending(session, job_id)
    for n, batch in enumerate(batches, start=1):
        reencode.process_batch(
            sessions=platform.sessions,
            blobs=platform.blobs,
            encoders_for=loaded.plain,
            batch_id=batch,
        )
        log.info("build %s: batch %d/%d", backbone.name, n, len(batches))
    with platform.sessions() as session:
        report = reencode.report(session, reencode_id=job_id)
        status = session.execute(
            text("SELECT status FROM models WHERE name = :n"), {"n": backbone.name}
        ).scalar_one()
        stages = session.execute(
            text(
                "SELECT coalesce(sum((timings->>'encode_image')::float), 0), "
                "coalesce(sum((timings->>'encode_text')::float), 0) "
                "FROM reencode_batches WHERE reencode_id = :j"
            ),
            {"j": job_id},
        ).one()
    if status != "ready":
        raise RuntimeError(f"model {backbone.name} is {status} after its build: {report}")
    return {
        "pairs": report.done,
        "missing": report.missing,
        "seconds": round(time.perf_counter() - started, 1),
        "encode_image_seconds": round(stages[0], 1),
        "encode_text_seconds": round(stages[1], 1),
    }


def _evaluate(
    platform: Platform, loaded: _Encoders, backbone: Backbone, test: LabelledSet, options: Options
) -> Evaluation:
    handle = platform.model(None if backbone.name == models.DEFAULT else backbone.name)
    evaluation = test.evaluate(
        platform, options, live=handle.live, encoders=loaded.for_eval(backbone)
    )
    log.info(
        "%s on %s (%d pairs): top-1 %.4f",
        backbone.name,
        test.name,
        evaluation.usable_pairs,
        evaluation.top1,
    )
    return evaluation


def _figures(evaluation: Evaluation) -> dict:
    return {
        "images": evaluation.images,
        "usable_pairs": evaluation.usable_pairs,
        "model_version": evaluation.model_version,
        "method": evaluation.method,
        "top1": evaluation.top1,
        "top5": evaluation.top5,
        "classify_seconds": round(evaluation.seconds, 1),
    }


def _add(platform: Platform, loaded: _Encoders, folder: Path, licence: str) -> dict:
    """Ingest a class folder of domain pairs; the ingest embeds them for every named model."""
    started = time.perf_counter()
    report = ingest(
        platform,
        folder,
        licence=licence,
        collection="cifar10-train",
        template=TEMPLATE,
        batch_size=250,
        encoders_for=loaded.plain,
    )
    return {
        "pairs_ready": report.done,
        "duplicates": report.duplicates,
        "rejected": report.rejected,
        "ingest_seconds": round(time.perf_counter() - started, 1),
    }


def throughput(
    platform: Platform,
    loaded: _Encoders,
    table: Sequence[Backbone],
    *,
    images: int = 256,
    captions: int = 1024,
    rounds: int = 3,
) -> dict:
    """Items/s of each encoder on the same anchor images (their stored bytes) and captions,
    through the platform's encoders (its CPU runtime), rounds interleaved across encoders (the
    machine is shared): the best round and the median."""
    with platform.sessions() as session:
        rows = session.execute(
            text("SELECT image_sha256, caption FROM pairs ORDER BY id LIMIT :n"),
            {"n": max(images, captions)},
        ).all()
    inputs: dict[str, list] = {
        "image": [platform.blobs.get(sha) for sha, _ in rows[:images]],
        "text": [caption for _, caption in rows[:captions]],
    }
    encoders: dict[str, Encoder] = {}
    for backbone in table:
        plain = loaded.plain(backbone.image_encoder, backbone.text_encoder)
        encoders.setdefault(plain.image.name, plain.image)
        encoders.setdefault(plain.text.name, plain.text)
    for encoder in encoders.values():  # warm: first calls compile and allocate
        encoder.embed_batch(inputs[encoder.modality][:8])
    seconds: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(rounds):
        for name, encoder in encoders.items():
            started = time.perf_counter()
            encoder.embed_batch(inputs[encoder.modality])
            seconds[name].append(time.perf_counter() - started)
    out = {}
    for name, encoder in encoders.items():
        items = len(inputs[encoder.modality])
        out[name] = {
            "modality": encoder.modality,
            "dim": encoder.dim,
            "items": items,
            "per_second_best": round(items / min(seconds[name]), 1),
            "per_second_median": round(items / statistics.median(seconds[name]), 1),
        }
    return out


def _passes(
    platform: Platform,
    loaded: _Encoders,
    table: Sequence[Backbone],
    tests: Sequence[LabelledSet],
    options: Options,
) -> dict[str, dict[str, Evaluation]]:
    return {
        b.name: {t.name: _evaluate(platform, loaded, b, t, options) for t in tests} for b in table
    }


def run(
    platform: Platform,
    images: Sequence[str] = IMAGE_ENCODERS,
    texts: Sequence[str] = TEXT_ENCODERS,
    tests: Sequence[LabelledSet] = (CIFAR_TEST, TINY_VAL.per_class(10)),
    domain_test: LabelledSet = CIFAR_TEST,
    train: Path = CIFAR_TRAIN,
    *,
    small_per_class: int = 10,
    k: int = 800,
    p: float = 8.0,
    memo_dir: Path = ROOT,
) -> runner.Result:
    """Build every backbone pair as a named model; evaluate each on `tests`; add
    `small_per_class` training pairs a class then the whole of `train` (one licence each) and
    evaluate each model on `domain_test`; revoke both and check every prediction of every
    model against before; then each encoder's throughput."""
    options = Options(k=k, p=p, aggregation="max")
    loaded = _Encoders(platform, memo_dir)
    table = backbones(platform, images, texts)
    out: runner.Result = {
        "k": k,
        "p": p,
        "template": TEMPLATE,
        "models": {
            b.name: {"image_encoder": b.image_encoder, "text_encoder": b.text_encoder}
            for b in table
        },
    }
    try:
        for backbone in table[1:]:
            out["models"][backbone.name]["build"] = _build(platform, loaded, backbone, k, p)
        base = _passes(platform, loaded, table, tests, options)
        out["zero_shot"] = {
            b: {t: _figures(e) for t, e in sets.items()} for b, sets in base.items()
        }
        domain: dict[str, dict] = {}
        total = 0
        with tempfile.TemporaryDirectory(prefix="asifdb-results-") as scratch:
            small = _sample(train, small_per_class, 0, Path(scratch) / "small")
            for step, folder, licence in (
                ("small", small, f"cifar10-train-{small_per_class}-a-class"),
                ("all", train, "cifar10-train"),
            ):
                added = _add(platform, loaded, folder, licence)
                total += added["pairs_ready"]
                passes = _passes(platform, loaded, table, (domain_test,), options)
                domain[step] = added | {
                    "licence": licence,
                    "domain_pairs": total,
                    "models": {b: _figures(sets[domain_test.name]) for b, sets in passes.items()},
                }
        out["domain"] = domain
        out["revoke"] = {
            licence: _revoke(platform, step["licence"])
            for licence, step in (("small", domain["small"]), ("all", domain["all"]))
        }
        back = _passes(platform, loaded, table, (domain_test,), options)
        out["after_revoke"] = {
            b: _figures(sets[domain_test.name])
            | {"compared_with_before": _compare(base[b][domain_test.name], sets[domain_test.name])}
            for b, sets in back.items()
        }
        out["throughput"] = throughput(platform, loaded, table)
    finally:
        loaded.save()
    return out


def plot(result: runner.Result, path: Path) -> None:
    """Top-1 of every model on each test set, and with the domain pairs."""
    names = list(result["zero_shot"])
    columns = [(t, result["zero_shot"]) for t in next(iter(result["zero_shot"].values()))]
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, len(columns) + 1)
    for ax, (test, figures) in zip(axes, columns, strict=False):
        values = [100 * figures[n][test]["top1"] for n in names]
        ax.barh(names, values, color="C0")
        for y, value in enumerate(values):
            ax.text(value + 0.5, y, f"{value:.1f}", va="center", fontsize=8)
        ax.set_title(test, fontsize=9)
        ax.set_xlabel("top-1 (%)")
    ax = axes[-1]
    steps = [("none", {n: result["zero_shot"][n][columns[0][0]] for n in names})] + [
        (f"+{step['domain_pairs']:,}", step["models"]) for step in result["domain"].values()
    ]
    for name in names:
        ax.plot(
            range(len(steps)), [100 * s[1][name]["top1"] for s in steps], marker="o", label=name
        )
    ax.set_xticks(range(len(steps)), [s[0] for s in steps], fontsize=8)
    ax.set_title(f"{columns[0][0]} + domain pairs", fontsize=9)
    ax.set_ylabel("top-1 (%)")
    ax.legend(fontsize=7)
    fig.suptitle(
        f"Backbones as named models over one collection (k = {result['k']}, p = {result['p']:g})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    runner.main("backbones", run, plot)
