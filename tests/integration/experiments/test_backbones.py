"""Experiment 8 on a few images: every backbone pair a named model over one collection."""

from collections.abc import Callable
from pathlib import Path

from asifdb.context import Platform
from asifdb.experiments import backbones
from tests.integration.experiments.conftest import ANCHOR_PAIRS, Data


def test_each_backbone_is_built_evaluated_and_left_as_before_by_revoking_the_domain_pairs(
    lab: Callable[[str], Platform], data: Data, tmp_path: Path
) -> None:
    result = backbones.run(
        lab("backbones"),
        images=("tf_efficientnet_lite0", "tf_efficientnet_lite1"),
        texts=("all-MiniLM-L6-v2",),
        tests=(data.cifar_test, data.tiny_val),
        domain_test=data.cifar_test,
        train=data.cifar_train,
        small_per_class=1,
        memo_dir=tmp_path,
    )

    assert list(result["models"]) == ["default", "lite1-minilm-l6-v2"]
    build = result["models"]["lite1-minilm-l6-v2"]["build"]
    assert build["pairs"] == ANCHOR_PAIRS and build["missing"] == 0
    for sets in result["zero_shot"].values():
        assert [f["usable_pairs"] for f in sets.values()] == [ANCHOR_PAIRS, ANCHOR_PAIRS]
        assert [f["images"] for f in sets.values()] == [30, 12]
    small, every = result["domain"]["small"], result["domain"]["all"]
    assert (small["pairs_ready"], small["domain_pairs"]) == (10, 10)
    # The small set's pairs are the training folder's too: duplicates, not pairs twice.
    assert (every["pairs_ready"], every["duplicates"], every["domain_pairs"]) == (20, 10, 30)
    for step, usable in ((small, ANCHOR_PAIRS + 10), (every, ANCHOR_PAIRS + 30)):
        assert {m: f["usable_pairs"] for m, f in step["models"].items()} == {
            "default": usable,
            "lite1-minilm-l6-v2": usable,
        }
    for figures in result["after_revoke"].values():
        assert figures["usable_pairs"] == ANCHOR_PAIRS
        same = figures["compared_with_before"]
        assert same["same_label"] == same["same_top5_order"] == same["images"] == 30
        assert same["max_abs_score_difference"] == 0.0
    speeds = result["throughput"]
    assert sorted(s["modality"] for s in speeds.values()) == ["image", "image", "text"]
    assert all(s["per_second_best"] > 0 for s in speeds.values())

    figure = tmp_path / "backbones.png"
    backbones.plot(result, figure)
    assert figure.stat().st_size > 10_000
