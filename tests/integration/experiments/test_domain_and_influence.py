"""Experiments 4 and 6 on a few images: domain pairs with revocation, and pair usage."""

from collections.abc import Callable
from pathlib import Path

from asifdb.context import Platform
from asifdb.experiments import domain_pairs, influence
from tests.integration.experiments.conftest import ANCHOR_PAIRS, Data


def test_revoking_the_domain_pairs_restores_every_prediction_exactly(
    lab: Callable[[str], Platform], data: Data, tmp_path: Path
) -> None:
    result = domain_pairs.run(
        lab("domain"), data.cifar_test, data.cifar_train, small_per_class=1, seeds=(0,)
    )

    assert result["before"]["usable_pairs"] == ANCHOR_PAIRS
    assert result["all_train"]["pairs_ready"] == 30
    assert result["after"]["usable_pairs"] == ANCHOR_PAIRS + 30
    assert result["revoke"]["pairs_removed"] == 30
    same = result["after_revoke"]["compared_with_before"]
    assert same["same_label"] == same["same_top5_order"] == same["images"] == 30
    assert same["max_abs_score_difference"] == 0.0
    for seeded in result["small"]["runs"]:
        assert seeded["pairs_ready"] == 10
        assert seeded["usable_pairs"] == ANCHOR_PAIRS + 10
        back = seeded["after_revoke"]
        assert back["usable_pairs_as_before"] and back["same_label"] == back["images"] == 30
        assert back["max_abs_score_difference"] == 0.0

    figure = tmp_path / "domain.png"
    domain_pairs.plot(result, figure)
    assert figure.stat().st_size > 10_000


def test_influence_counts_recorded_evidence_and_prunes_the_unused_pairs(
    lab: Callable[[str], Platform], data: Data, tmp_path: Path
) -> None:
    result = influence.run(lab("influence"), (data.cifar_test,), depths=(None, 3))

    figures = result["sets"][data.cifar_test.name]
    every, top3 = figures["depths"]["all"], figures["depths"]["3"]
    # Each of the 30 predictions recorded its 3 largest contributions at depth 3.
    assert top3["distribution"]["evidence_rows"] == sum(top3["used_counts_sorted"]) == 90
    assert every["distribution"]["evidence_rows"] == 30 * figures["evidence_rows_per_prediction"]
    for at in (every, top3):
        used = at["distribution"]["pairs_used"]
        assert used == len(at["used_counts_sorted"]) <= ANCHOR_PAIRS
        assert at["pruned_in_sample"]["pairs_kept"] == used
    assert top3["distribution"]["pairs_used"] <= every["distribution"]["pairs_used"]

    figure = tmp_path / "influence.png"
    influence.plot(result, figure)
    assert figure.stat().st_size > 10_000
