"""Experiment 6: which pairs carry a test set's predictions. Every prediction is recorded with
its evidence through `services.evaluation`; usage is counted in `prediction_evidence` (SQL);
then the never-used pairs are pruned and the set scored again by the engine on the rest.

    .venv/bin/python -m asifdb.experiments.influence
"""

import logging
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sqlalchemy import text

from asifdb.context import Platform
from asifdb.experiments import runner
from asifdb.experiments.anchors_db import ACTOR
from asifdb.experiments.datasets import CIFAR_TEST, TINY_VAL, Embedded, LabelledSet, embed
from asifdb.experiments.engine_sweep import Anchors, Sweep, load_anchors
from asifdb.services.classify import Options
from asifdb.services.evaluation import Evaluation

log = logging.getLogger(__name__)

# A pair is "used" at depth N when it is among a prediction's N largest contributions;
# None counts every pair that contributed at all.
DEPTHS = (None, 10)

_USAGE = text(
    "SELECT e.pair_id, count(*) FROM prediction_evidence e "
    "WHERE e.prediction_id = ANY(:ids) AND (CAST(:depth AS int) IS NULL OR e.rank <= :depth) "
    "GROUP BY e.pair_id"
)


def _evaluate(
    platform: Platform, test: LabelledSet, options: Options, *, record: bool = False
) -> Evaluation:
    evaluation = test.evaluate(platform, options, record=record, client=ACTOR)
    log.info("%s, %d pairs: top-1 %.4f", test.name, evaluation.usable_pairs, evaluation.top1)
    return evaluation


def _usage(platform: Platform, prediction_ids: list[int], depth: int | None) -> dict[int, int]:
    with platform.sessions() as session:
        rows = session.execute(_USAGE, {"ids": prediction_ids, "depth": depth}).all()
    return {int(pair): int(count) for pair, count in rows}


def _usable(platform: Platform) -> np.ndarray:
    with platform.sessions() as session:
        ids = session.execute(text("SELECT id FROM usable_pairs ORDER BY id")).scalars()
        return np.fromiter(ids, dtype=np.int64)


def _first_half(evaluation: Evaluation) -> set[str]:
    """Inputs of the first half of each class's images (by file name): the usage half."""
    by_class: dict[str, list[str]] = {}
    for r in evaluation.predictions:
        by_class.setdefault(r.true_label, []).append(r.input)
    return {i for inputs in by_class.values() for i in inputs[: len(inputs) // 2]}


def _top1(evaluation: Evaluation, inputs: set[str], inside: bool) -> float:
    hits = [r.correct for r in evaluation.predictions if (r.input in inputs) == inside]
    return float(np.mean(hits))


def _distribution(counts: np.ndarray) -> dict:
    """Usage counts of every usable pair (zeros included), sorted descending, summarised."""
    used = counts[counts > 0]
    total = counts.sum()
    top = max(1, len(counts) // 100)
    return {
        "pairs_used": int(len(used)),
        "share_of_pairs_used": float(len(used) / len(counts)),
        "evidence_rows": int(total),
        "max_uses": int(counts[0]),
        "median_uses_of_used": float(np.median(used)) if len(used) else 0.0,
        "share_of_usage_top_1pct_pairs": float(counts[:top].sum() / total),
        "share_of_usage_top_10pct_pairs": float(counts[: max(1, len(counts) // 10)].sum() / total),
        "pairs_for_half_of_usage": int(np.searchsorted(np.cumsum(counts), total / 2) + 1),
        "pairs_for_90pct_of_usage": int(np.searchsorted(np.cumsum(counts), 0.9 * total) + 1),
    }


def _pruned(data: Embedded, anchors: Anchors, used: dict[int, int], k: int, p: float) -> np.ndarray:
    """Labels by the engine on the used pairs only (the served path agrees with the engine
    image by image; eight more passes through classify would not fit the hour)."""
    keep = np.flatnonzero(np.isin(anchors.ids, np.fromiter(used, dtype=np.int64)))
    return Sweep(data, anchors.subset(keep), min(k, len(keep))).class_scores(k, p).argmax(axis=1)


def run(
    platform: Platform,
    sets: tuple[LabelledSet, ...] = (CIFAR_TEST, TINY_VAL.per_class(10)),
    *,
    depths: tuple[int | None, ...] = DEPTHS,
    k: int = 800,
    p: float = 8.0,
) -> runner.Result:
    """Per set and depth: the usage distribution, and top-1 with the never-used pairs pruned,
    in-sample (usage from every image) and held out (usage from the first half of each class,
    accuracy on the second half)."""
    options = Options(k=k, p=p, aggregation="max")
    usable = _usable(platform)
    out: runner.Result = {"k": k, "p": p, "usable_pairs": len(usable), "sets": {}}
    for test in sets:
        recorded = _evaluate(platform, test, options, record=True)
        ids = [int(r.prediction_id) for r in recorded.predictions if r.prediction_id is not None]
        half = _first_half(recorded)
        half_ids = [int(r.prediction_id) for r in recorded.predictions if r.input in half]
        figures: dict = {
            "images": recorded.images,
            "top1": recorded.top1,
            "top1_second_half": _top1(recorded, half, inside=False),
            "evidence_rows_per_prediction": sum(_usage(platform, ids, None).values()) / len(ids),
            "depths": {},
        }
        with platform.sessions() as session:
            anchors = load_anchors(session)
        data = embed(platform, test)
        assert data.inputs == tuple(r.input for r in recorded.predictions)
        served = np.array([recorded.classes.index(r.label) for r in recorded.predictions])
        second = np.array([r.input not in half for r in recorded.predictions])

        for depth in depths:
            usage = _usage(platform, ids, depth)
            counts = np.sort(np.array([usage.get(int(i), 0) for i in usable]))[::-1]
            half_usage = _usage(platform, half_ids, depth)
            in_sample = _pruned(data, anchors, usage, k, p)
            held_out = _pruned(data, anchors, half_usage, k, p)
            figures["depths"][str(depth or "all")] = {
                "distribution": _distribution(counts),
                "used_counts_sorted": counts[counts > 0].tolist(),
                "pruned_in_sample": {
                    "pairs_kept": len(usage),
                    "top1": float(np.mean(in_sample == data.labels)),
                    "same_label_as_unpruned": float(np.mean(in_sample == served)),
                },
                "pruned_held_out": {
                    "pairs_kept": len(half_usage),
                    "top1_second_half": float(np.mean((held_out == data.labels)[second])),
                    "top1_first_half": float(np.mean((held_out == data.labels)[~second])),
                },
            }
        out["sets"][test.name] = figures
    return out


def plot(result: runner.Result, path: Path) -> None:
    """Rank-frequency of pair usage (log-log) per set and depth, and top-1 after pruning."""
    fig = Figure(figsize=(11, 4.3))
    left, right = fig.subplots(1, 2)
    bars, labels = [], []
    for n, (name, figures) in enumerate(result["sets"].items()):
        for depth, style in zip(figures["depths"], ("-", "--", ":"), strict=False):
            used = figures["depths"][depth]["used_counts_sorted"]
            label = f"{name}, {'every contributor' if depth == 'all' else f'top {depth}'}"
            left.plot(np.arange(1, len(used) + 1), used, f"C{n}{style}", label=label)
            at = figures["depths"][depth]
            bars.append(
                (
                    100 * figures["top1"],
                    100 * at["pruned_in_sample"]["top1"],
                    100 * figures["top1_second_half"],
                    100 * at["pruned_held_out"]["top1_second_half"],
                )
            )
            kept = at["pruned_in_sample"]["pairs_kept"]
            labels.append(f"{name}\n{depth}: {kept} kept")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("pair, by usage rank (never-used pairs not drawn)")
    left.set_ylabel("predictions the pair carried")
    left.legend(fontsize=7)
    left.set_title(f"usage of {result['usable_pairs']} pairs", fontsize=9)
    x = np.arange(len(bars))
    names = ("all pairs", "pruned (in-sample)", "all pairs, held-out half", "pruned, held-out half")
    for i, name in enumerate(names):
        right.bar(x + (i - 1.5) * 0.2, [b[i] for b in bars], 0.2, label=name)
    right.set_xticks(x, labels, fontsize=7)
    right.set_ylabel("top-1 (%)")
    right.set_ylim(0, 100)
    right.legend(fontsize=7)
    right.set_title("pruning the never-used pairs", fontsize=9)
    fig.suptitle(f"Which pairs carry the predictions (k = {result['k']}, p = {result['p']:g})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    runner.main("influence", run, plot)
