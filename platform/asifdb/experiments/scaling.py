"""Experiment 2: accuracy against the number of anchor pairs, three random subsets per size
below the full set (and the first N pairs in ingest order), by the engine on the database's
anchors (k = 800, p = 8, max over templates), with the 1-NN caption baseline alongside.

    .venv/bin/python -m asifdb.experiments.scaling
"""

import logging
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from asifdb.context import Platform
from asifdb.experiments import runner
from asifdb.experiments.datasets import CIFAR_TEST, TINY_VAL, LabelledSet, embed
from asifdb.experiments.engine_sweep import Sweep, accuracy, load_anchors, nearest_caption_scores

log = logging.getLogger(__name__)

SIZES = (250, 500, 1_000, 2_000, 5_000, 10_000, 20_000)


def run(
    platform: Platform,
    sets: tuple[LabelledSet, ...] = (CIFAR_TEST, TINY_VAL.per_class(10)),
    *,
    sizes: tuple[int, ...] = SIZES,
    seeds: tuple[int, ...] = (0, 1, 2),
    k: int = 800,
    p: float = 8.0,
) -> runner.Result:
    """For each size: accuracy of `seeds` random subsets (one run at the full size) and of the
    first `size` pairs by id; ASIF and the 1-NN baseline on each set."""
    with platform.sessions() as session:
        anchors = load_anchors(session)
    total = len(anchors.ids)
    out: runner.Result = {"k": k, "p": p, "usable_pairs": total, "sets": {}}
    for labelled in sets:
        data = embed(platform, labelled)
        rows = []
        for size in sizes:
            if size > total:
                continue
            subsets = {"first": np.arange(size)}
            if size < total:
                for seed in seeds:
                    rng = np.random.default_rng(seed)
                    subsets[f"seed{seed}"] = rng.choice(total, size=size, replace=False)
            for name, picked in subsets.items():
                started = time.perf_counter()
                subset = anchors.subset(picked)
                scores = Sweep(data, subset, min(k, size)).class_scores(k, p)
                baseline = nearest_caption_scores(data, subset)
                rows.append(
                    {
                        "pairs": size,
                        "subset": name,
                        "top1": accuracy(scores, data.labels),
                        "top5": accuracy(scores, data.labels, 5),
                        "nn1_top1": accuracy(baseline, data.labels),
                        "seconds": time.perf_counter() - started,
                    }
                )
                log.info("%s %d %s: %.4f", labelled.name, size, name, rows[-1]["top1"])
        out["sets"][labelled.name] = {
            "images": len(data.labels),
            "chance": 1 / len(data.classes),
            "runs": rows,
            "summary": _summary(rows),
        }
    return out


def _summary(rows: list[dict]) -> list[dict]:
    """Per size: mean and standard deviation over the random subsets (the full set: its one
    run), and the first-N figure."""
    summary = []
    for size in sorted({r["pairs"] for r in rows}):
        at = [r for r in rows if r["pairs"] == size]
        random = [r for r in at if r["subset"] != "first"] or at
        first = next(r for r in at if r["subset"] == "first")
        summary.append(
            {
                "pairs": size,
                "subsets": len(random),
                "top1_mean": float(np.mean([r["top1"] for r in random])),
                "top1_std": float(np.std([r["top1"] for r in random])),
                "top5_mean": float(np.mean([r["top5"] for r in random])),
                "nn1_top1_mean": float(np.mean([r["nn1_top1"] for r in random])),
                "nn1_top1_std": float(np.std([r["nn1_top1"] for r in random])),
                "first_top1": first["top1"],
            }
        )
    return summary


def plot(result: runner.Result, path: Path) -> None:
    """Top-1 against pairs (log axis): mean ± std over random subsets, first N, 1-NN, chance."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for n, (name, figures) in enumerate(result["sets"].items()):
        colour = f"C{n}"
        rows = figures["summary"]
        x = np.array([r["pairs"] for r in rows])
        mean = 100 * np.array([r["top1_mean"] for r in rows])
        std = 100 * np.array([r["top1_std"] for r in rows])
        ax.errorbar(x, mean, yerr=std, color=colour, marker="o", capsize=3, label=f"{name}, ASIF")
        ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.15)
        first = 100 * np.array([r["first_top1"] for r in rows])
        ax.plot(x, first, color=colour, marker="x", linestyle="none", label="  first N pairs")
        nn1 = 100 * np.array([r["nn1_top1_mean"] for r in rows])
        ax.plot(x, nn1, color=colour, linestyle="--", marker=".", label="  1-NN caption baseline")
        ax.axhline(100 * figures["chance"], color=colour, linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("anchor pairs (log scale)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(
        f"Accuracy against anchor pairs (k = {result['k']}, p = {result['p']:g}; dotted: chance)",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    runner.main("scaling", run, plot)
