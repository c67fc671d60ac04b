"""Experiments 2 and 3 on a few images: the engine's sweeps agree with the served path."""

from collections.abc import Callable
from pathlib import Path

import pytest

from asifdb.context import Platform
from asifdb.experiments import grid, scaling
from asifdb.experiments.datasets import LabelledSet
from asifdb.services.classify import Options
from asifdb.services.evaluation import Evaluation, evaluate
from tests.integration.experiments.conftest import ANCHOR_PAIRS, Data
from tests.samples import TEST_ROOTS


def _served(platform: Platform, test: LabelledSet, k: int, p: float) -> Evaluation:
    return evaluate(
        roots=TEST_ROOTS,
        sessions=platform.sessions,
        live=platform.live,
        encoders=platform.encoders,
        folder=test.folder,
        templates=test.templates,
        options=Options(k=k, p=p),
    )


def test_scaling_runs_seeds_below_the_full_set_and_matches_classify_at_it(
    lab: Callable[[str], Platform], data: Data, tmp_path: Path
) -> None:
    platform = lab("scaling")
    result = scaling.run(platform, (data.cifar_test,), sizes=(40, 80, ANCHOR_PAIRS), seeds=(0, 1))

    figures = result["sets"][data.cifar_test.name]
    runs = {(r["pairs"], r["subset"]) for r in figures["runs"]}
    assert runs == {
        (40, "first"), (40, "seed0"), (40, "seed1"),
        (80, "first"), (80, "seed0"), (80, "seed1"),
        (ANCHOR_PAIRS, "first"),
    }  # fmt: skip
    summary = {row["pairs"]: row for row in figures["summary"]}
    assert summary[40]["subsets"] == 2 and summary[ANCHOR_PAIRS]["subsets"] == 1
    assert summary[ANCHOR_PAIRS]["top1_std"] == 0
    served = _served(platform, data.cifar_test, 800, 8.0)
    assert summary[ANCHOR_PAIRS]["top1_mean"] == pytest.approx(served.top1)

    figure = tmp_path / "scaling.png"
    scaling.plot(result, figure)
    assert figure.stat().st_size > 10_000


def test_grid_covers_every_cell_and_its_cells_match_classify(
    lab: Callable[[str], Platform], data: Data, tmp_path: Path
) -> None:
    platform = lab("grid")
    result = grid.run(platform, (data.cifar_test,), ks=(5, 50, 800), ps=(1, 8))

    figures = result["sets"][data.cifar_test.name]
    assert len(figures["top1"]) == 3 and all(len(row) == 2 for row in figures["top1"])
    best = figures["best"]
    assert best["top1"] == max(max(row) for row in figures["top1"])
    for (i, k), (j, p) in (((0, 5), (0, 1)), ((2, 800), (1, 8))):
        assert figures["top1"][i][j] == pytest.approx(_served(platform, data.cifar_test, k, p).top1)

    figure = tmp_path / "grid.png"
    grid.plot(result, figure)
    assert figure.stat().st_size > 10_000
