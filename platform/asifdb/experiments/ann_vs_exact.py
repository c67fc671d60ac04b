"""Experiment 5: the test sets through pgvector HNSW (`Options(method="ann")`, through
`services.evaluation`) against the exact scan: accuracy and top-1 agreement.

    .venv/bin/python -m asifdb.experiments.ann_vs_exact
"""

import logging
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from asifdb.anchors import ann_index
from asifdb.context import Platform
from asifdb.experiments import runner
from asifdb.experiments.datasets import CIFAR_TEST, TINY_VAL, LabelledSet, embed
from asifdb.experiments.engine_sweep import Sweep, accuracy, load_anchors
from asifdb.services.classify import Options
from asifdb.services.evaluation import Evaluation

log = logging.getLogger(__name__)


def _evaluate(platform: Platform, test: LabelledSet, options: Options) -> Evaluation:
    evaluation = test.evaluate(platform, options)
    log.info("%s %s: top-1 %.4f", test.name, evaluation.method, evaluation.top1)
    return evaluation


def run(
    platform: Platform,
    sets: tuple[LabelledSet, ...] = (CIFAR_TEST, TINY_VAL),
    *,
    k: int = 800,
    p: float = 8.0,
) -> runner.Result:
    """Per set: top-1/top-5 through classify on HNSW, the exact path's (the engine on the same
    anchors, which the exact classify path matches image by image: zero_shot), their top-1
    agreement and the HNSW pass's time."""
    with platform.sessions() as session:
        anchors = load_anchors(session)
    # Building the index is schema work: the set-up role's (ADMIN_DATABASE_URL, or embedded).
    setup = Platform(platform.settings, role="setup")
    try:
        index = ann_index.build(setup.engine)
    finally:
        setup.close(keep_server=True)
    out: runner.Result = {"k": k, "p": p, "sets": {}, "index": index.as_dict()}
    for test in sets:
        ann = _evaluate(platform, test, Options(k=k, p=p, method="ann"))
        data = embed(platform, test)
        assert data.inputs == tuple(r.input for r in ann.predictions)
        exact = Sweep(data, anchors, k).class_scores(k, p)
        served = np.array([ann.classes.index(r.label) for r in ann.predictions])
        out["sets"][test.name] = {
            "images": ann.images,
            "usable_pairs": ann.usable_pairs,
            "exact": {
                "method": "exact (engine)",
                "top1": accuracy(exact, data.labels),
                "top5": accuracy(exact, data.labels, 5),
            },
            "ann": {
                "method": ann.method,
                "top1": ann.top1,
                "top5": ann.top5,
                "seconds": ann.seconds,
            },
            "top1_agreement": float(np.mean(served == exact.argmax(axis=1))),
        }
    return out


def plot(result: runner.Result, path: Path) -> None:
    """Top-1 of each path per set, with their agreement."""
    sets = result["sets"]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    x = np.arange(len(sets))
    for i, method in enumerate(("exact", "ann")):
        values = [100 * figures[method]["top1"] for figures in sets.values()]
        ax.bar(x + (i - 0.5) * 0.35, values, 0.35, label=method)
    labels = [f"{name}\nagreement {100 * f['top1_agreement']:.1f} %" for name, f in sets.items()]
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("top-1 (%)")
    ax.set_ylim(0, 100)
    ax.legend()
    ax.set_title(f"Exact scan vs HNSW (k = {result['k']}, p = {result['p']:g})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    runner.main("ann_vs_exact", run, plot)
