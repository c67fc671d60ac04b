"""Experiment 4 (the paper's EuroSAT experiment, here): add CIFAR-10 training images as pairs
captioned "a photo of a {class}." under their own licence, classify CIFAR-10 test before and
after, revoke the licence and check every prediction against the one before, all through the
platform's ingest, licences and `services.evaluation` end to end.

    .venv/bin/python -m asifdb.experiments.domain_pairs
"""

import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from asifdb.context import Platform
from asifdb.experiments import runner
from asifdb.experiments.anchors_db import ACTOR, ingest
from asifdb.experiments.datasets import CIFAR_TEST, CIFAR_TRAIN, Embedded, LabelledSet, embed
from asifdb.experiments.engine_sweep import Sweep, accuracy, load_anchors
from asifdb.services import licences
from asifdb.services.classify import Options
from asifdb.services.evaluation import Evaluation

log = logging.getLogger(__name__)

TEMPLATE = "a photo of a {}."


def _evaluate(platform: Platform, test: LabelledSet, options: Options) -> Evaluation:
    evaluation = test.evaluate(platform, options)
    log.info("%d pairs: top-1 %.4f", evaluation.usable_pairs, evaluation.top1)
    return evaluation


def _figures(evaluation: Evaluation) -> dict:
    return {
        "usable_pairs": evaluation.usable_pairs,
        "model_version": evaluation.model_version,
        "top1": evaluation.top1,
        "top5": evaluation.top5,
        "per_class_top1": evaluation.per_class,
        "classify_seconds": evaluation.seconds,
    }


def _compare(before: Evaluation, now: Evaluation) -> dict:
    """Prediction by prediction: same image, same label, and how far any class score moved."""
    pairs = list(zip(before.predictions, now.predictions, strict=True))
    assert all(b.input == n.input for b, n in pairs)
    gap = max(max(abs(x - y) for x, y in zip(b.scores, n.scores, strict=True)) for b, n in pairs)
    return {
        "images": len(pairs),
        "same_label": sum(b.label == n.label for b, n in pairs),
        "same_top5_order": sum(b.top == n.top for b, n in pairs),
        "max_abs_score_difference": gap,
    }


def _revoke(platform: Platform, licence: str) -> dict:
    with platform.sessions.begin() as session:
        return licences.revoke(
            session, licence=licence, reason="results: revocation check", actor=ACTOR
        ).model_dump()


def _add(platform: Platform, folder: Path, name: str) -> dict:
    started = time.perf_counter()
    report = ingest(
        platform, folder, licence=name, collection=name, template=TEMPLATE, batch_size=250
    )
    return {
        "pairs_ready": report.done,
        "rejected": report.rejected,
        "duplicates": report.duplicates,
        "ingest_seconds": time.perf_counter() - started,
    }


def _engine(platform: Platform, data: Embedded, k: int, p: float) -> dict:
    """Class scores by the engine on the usable anchors the database holds now."""
    with platform.sessions() as session:
        anchors = load_anchors(session)
    return {"ids": anchors.ids, "scores": Sweep(data, anchors, k).class_scores(k, p, "max")}


def _engine_figures(scored: dict, data: Embedded) -> dict:
    labels = scored["scores"].argmax(axis=1)
    return {
        "usable_pairs": len(scored["ids"]),
        "top1": accuracy(scored["scores"], data.labels),
        "top5": accuracy(scored["scores"], data.labels, 5),
        "per_class_top1": {
            c: float(np.mean(labels[data.labels == n] == n)) for n, c in enumerate(data.classes)
        },
    }


def _engine_compare(before: dict, now: dict) -> dict:
    """Usable anchors and every image's class scores, now against before."""
    return {
        "usable_pairs_as_before": bool(np.array_equal(now["ids"], before["ids"])),
        "images": len(now["scores"]),
        "same_label": int(np.sum(now["scores"].argmax(axis=1) == before["scores"].argmax(axis=1))),
        "max_abs_score_difference": float(np.max(np.abs(now["scores"] - before["scores"]))),
    }


def _sample(train: Path, per_class: int, seed: int, into: Path) -> Path:
    """A class-folder copy of `per_class` training images of each class, drawn with `seed`."""
    rng = np.random.default_rng(seed)
    for folder in sorted(p for p in train.iterdir() if p.is_dir()):
        files = sorted(folder.iterdir())
        (into / folder.name).mkdir(parents=True)
        for n in rng.choice(len(files), size=min(per_class, len(files)), replace=False):
            shutil.copyfile(files[n], into / folder.name / files[n].name)
    return into


def run(
    platform: Platform,
    test: LabelledSet = CIFAR_TEST,
    train: Path = CIFAR_TRAIN,
    *,
    small_per_class: int = 10,
    served_per_class: int | None = None,
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
    k: int = 800,
    p: float = 8.0,
) -> runner.Result:
    """Before, with every training pair, after revoking them (each through classify); then
    `small_per_class` pairs a class for each seed (added, scored by the engine, revoked, and
    the usable anchors and every prediction checked against before)."""
    # Accuracies by the engine on the database's usable anchors, all test images (the served
    # path agrees with it image by image: zero_shot); the revocation check through classify
    # too, on `served_per_class` images a class: the full set, thrice, does not fit the hour.
    options = Options(k=k, p=p, aggregation="max")
    served = test.per_class(served_per_class)
    data = embed(platform, test)
    base = _engine(platform, data, k, p)
    before = _evaluate(platform, served, options)
    out: runner.Result = {
        "k": k,
        "p": p,
        "template": TEMPLATE,
        "served_images": before.images,
        "before": _engine_figures(base, data) | {"served": _figures(before)},
    }

    licence = "cifar10-train"
    out["all_train"] = _add(platform, train, licence)
    after = _evaluate(platform, served, options)
    with_all = _engine(platform, data, k, p)
    out["after"] = _engine_figures(with_all, data) | {
        "served": _figures(after),
        "changed_from_before": _compare(before, after),
    }
    out["revoke"] = _revoke(platform, licence)
    revoked = _evaluate(platform, served, options)
    back = _engine(platform, data, k, p)
    out["after_revoke"] = _engine_figures(back, data) | {
        "served": _figures(revoked),
        "compared_with_before": _compare(before, revoked),
        "engine_compared_with_before": _engine_compare(base, back),
    }

    small = []
    with tempfile.TemporaryDirectory(prefix="asifdb-results-") as scratch:
        for seed in seeds:
            name = f"cifar10-train-{small_per_class}-a-class-seed{seed}"
            folder = _sample(train, small_per_class, seed, Path(scratch) / name)
            added = _add(platform, folder, name)
            with_small = _engine(platform, data, k, p)
            _revoke(platform, name)
            back = _engine(platform, data, k, p)
            small.append(
                added
                | {
                    "seed": seed,
                    "usable_pairs": len(with_small["ids"]),
                    "top1": accuracy(with_small["scores"], data.labels),
                    "top5": accuracy(with_small["scores"], data.labels, 5),
                    "after_revoke": _engine_compare(base, back),
                }
            )
    top1 = [s["top1"] for s in small]
    out["small"] = {
        "per_class": small_per_class,
        "runs": small,
        "top1_mean": float(np.mean(top1)),
        "top1_std": float(np.std(top1)),
    }
    return out


def plot(result: runner.Result, path: Path) -> None:
    """Top-1 before, with the small and the full set of domain pairs, and after revoking; and
    per-class top-1 before and with every training pair."""
    fig = Figure(figsize=(11, 4.2))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]})
    small = result["small"]
    bars = [
        ("before", 100 * result["before"]["top1"], 0.0),
        (
            f"+{small['runs'][0]['pairs_ready']} pairs\n({len(small['runs'])} seeds)",
            100 * small["top1_mean"],
            100 * small["top1_std"],
        ),
        (f"+{result['all_train']['pairs_ready']} pairs", 100 * result["after"]["top1"], 0.0),
        ("licence\nrevoked", 100 * result["after_revoke"]["top1"], 0.0),
    ]
    colours = ["C0", "C1", "C2", "C0"]
    x = np.arange(len(bars))
    left.bar(x, [b[1] for b in bars], yerr=[b[2] for b in bars], color=colours, capsize=4)
    for xi, (_, value, spread) in zip(x, bars, strict=True):
        label = f"{value:.1f}" + (f" ± {spread:.1f}" if spread else "")
        left.text(xi, value + spread + 1, label, ha="center", fontsize=8)
    left.set_xticks(x, [b[0] for b in bars], fontsize=8)
    left.set_ylabel("CIFAR-10 test top-1 (%)")
    left.set_ylim(0, 100)
    served = result["after_revoke"]["compared_with_before"]
    engine = result["after_revoke"]["engine_compared_with_before"]
    left.set_title(
        f"after revoking: {served['same_label']}/{served['images']} served and "
        f"{engine['same_label']}/{engine['images']} engine labels as before",
        fontsize=8,
    )
    classes = list(result["before"]["per_class_top1"])
    x = np.arange(len(classes))
    for offset, key, label in ((-0.2, "before", "before"), (0.2, "after", "+ all pairs")):
        values = [100 * result[key]["per_class_top1"][c] for c in classes]
        right.bar(x + offset, values, 0.4, label=label)
    right.set_xticks(x, classes, rotation=45, ha="right", fontsize=8)
    right.set_ylabel("top-1 (%)")
    right.set_ylim(0, 100)
    right.legend(fontsize=8)
    right.set_title("per class", fontsize=9)
    fig.suptitle(f"Domain pairs captioned {result['template']!r}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    runner.main("domain_pairs", run, plot)
