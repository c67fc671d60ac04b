"""Experiments 5 and 7 on a few images: exact vs HNSW, and warm-model throughput."""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from asifdb.context import Platform
from asifdb.experiments import ann_vs_exact, throughput
from tests.integration.experiments.conftest import Data


def test_ann_and_exact_paths_are_both_measured(
    lab: Callable[[str], Platform], data: Data, tmp_path: Path
) -> None:
    result = ann_vs_exact.run(lab("ann"), (data.cifar_test,), k=50)

    figures = result["sets"][data.cifar_test.name]
    assert figures["exact"]["method"] == "exact (engine)" and figures["ann"]["method"] == "ann"
    # 160 pairs: HNSW finds (nearly) every true neighbour.
    assert figures["top1_agreement"] >= 0.9

    figure = tmp_path / "ann.png"
    ann_vs_exact.plot(result, figure)
    assert figure.stat().st_size > 10_000


def test_throughput_reports_rates_and_latency(lab: Callable[[str], Platform], data: Data) -> None:
    one_a_class = replace(data.cifar_test, limit_per_class=1)
    result = throughput.run(lab("throughput"), (one_a_class,), batch_size=4, single=2)

    figures = result["sets"][data.cifar_test.name]
    assert figures["images"] == 10
    for key in (
        "images_per_second",
        "images_per_second_recorded",
        "encoder_only_images_per_second",
        "one_image_latency_ms_median",
    ):
        assert figures[key] > 0
