"""Experiment 3: top-1 accuracy over a k x p grid on each test set (all usable pairs, max over
templates), by the engine on the database's anchors; each query's neighbours are found once.

    .venv/bin/python -m asifdb.experiments.grid
"""

import logging
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from asifdb.context import Platform
from asifdb.experiments import runner
from asifdb.experiments.datasets import CIFAR_TEST, TINY_VAL, LabelledSet, embed
from asifdb.experiments.engine_sweep import Sweep, accuracy, load_anchors

log = logging.getLogger(__name__)

# Cut from 50, 100, …, 3200 x 1, 2, 4, 8, 16 to what fitted the hour on the shared cores.
KS = (50, 100, 200, 400, 800, 1600, 3200)
PS = (1, 2, 4, 8, 16)


def run(
    platform: Platform,
    sets: tuple[LabelledSet, ...] = (CIFAR_TEST, TINY_VAL.per_class(10)),
    *,
    ks: tuple[int, ...] = KS,
    ps: tuple[float, ...] = PS,
) -> runner.Result:
    """top1[i][j] is the accuracy at k = ks[i], p = ps[j]; the best cell is named."""
    with platform.sessions() as session:
        anchors = load_anchors(session)
    out: runner.Result = {"ks": list(ks), "ps": list(ps), "usable_pairs": len(anchors.ids)}
    out["sets"] = {}
    for labelled in sets:
        data = embed(platform, labelled)
        sweep = Sweep(data, anchors, max(ks))
        top1 = [[accuracy(sweep.class_scores(k, p), data.labels) for p in ps] for k in ks]
        best = np.unravel_index(int(np.argmax(top1)), (len(ks), len(ps)))
        out["sets"][labelled.name] = {
            "images": len(data.labels),
            "top1": top1,
            "best": {"k": ks[best[0]], "p": ps[best[1]], "top1": top1[best[0]][best[1]]},
        }
        log.info("%s: best %s", labelled.name, out["sets"][labelled.name]["best"])
    return out


def plot(result: runner.Result, path: Path) -> None:
    """One heatmap per test set, each cell labelled with its top-1 (%)."""
    ks, ps, sets = result["ks"], result["ps"], result["sets"]
    fig = Figure(figsize=(4.6 * len(sets), 4.4))
    axes = fig.subplots(1, len(sets), squeeze=False)[0]
    for ax, (name, figures) in zip(axes, sets.items(), strict=True):
        grid = 100 * np.array(figures["top1"])
        image = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
        for i in range(len(ks)):
            for j in range(len(ps)):
                best = (ks[i], ps[j]) == (figures["best"]["k"], figures["best"]["p"])
                ax.text(
                    j,
                    i,
                    f"{grid[i, j]:.1f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="w" if grid[i, j] < grid.mean() else "k",
                    fontweight="bold" if best else "normal",
                )
        ax.set_xticks(range(len(ps)), [f"{p:g}" for p in ps])
        ax.set_yticks(range(len(ks)), [str(k) for k in ks])
        ax.set_xlabel("p")
        ax.set_ylabel("k")
        ax.set_title(f"{name} ({figures['images']} images)", fontsize=9)
        fig.colorbar(image, ax=ax, label="top-1 (%)")
    fig.suptitle(f"Top-1 over k x p ({result['usable_pairs']} pairs; bold: best)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    runner.main("grid", run, plot)
