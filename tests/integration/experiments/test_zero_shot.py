"""Experiment 1 on a few images: evaluation through classify, the baseline, the figure."""

from collections.abc import Callable
from pathlib import Path

from asifdb.context import Platform
from asifdb.experiments import zero_shot
from tests.integration.experiments.conftest import ANCHOR_PAIRS, Data


def test_zero_shot_reports_both_aggregations_the_baseline_and_a_figure(
    lab: Callable[[str], Platform], data: Data, tmp_path: Path
) -> None:
    result = zero_shot.run(
        lab("zero_shot"),
        (data.cifar_test, data.tiny_val),
        engine_only=(data.tiny_val,),
        subset_per_class=2,
    )

    cifar = result["sets"][data.cifar_test.name]
    assert (cifar["images"], cifar["classes"], cifar["templates"]) == (30, 10, 7)
    assert cifar["usable_pairs"] == ANCHOR_PAIRS
    assert cifar["chance_top1"] == 0.1 and cifar["chance_top5"] == 0.5
    for key in ("asif_max", "asif_mean", "nn1_caption_max", "nn1_caption_mean"):
        assert 0 <= cifar[key]["top1"] <= cifar[key]["top5"] <= 1
    # The engine on the database's anchors and the served path agree image by image.
    assert cifar["engine_agreement_with_classify"] == 1.0
    tiny = result["sets"][data.tiny_val.name]
    assert (tiny["images"], tiny["classes"], tiny["templates"]) == (12, 4, 7)
    names = {"goldfish", "European fire salamander", "bullfrog", "tailed frog"}
    assert set(tiny["per_class_top1"]) == names
    # The engine-only entry scores the same images as the served path labelled them.
    by_engine = result["sets"][f"{data.tiny_val.name}, 12 images (engine)"]
    assert by_engine["images"] == 12 and by_engine["engine_agreement_with_classify"] is None
    for key in ("asif_max", "asif_mean", "nn1_caption_max"):
        assert by_engine[key] == tiny[key]

    figure = tmp_path / "zero-shot.png"
    zero_shot.plot(result, figure)
    assert figure.stat().st_size > 10_000
