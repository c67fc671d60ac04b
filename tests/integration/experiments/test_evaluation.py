"""`services.evaluation`: a labelled folder's accuracy through classify, on real pairs."""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text

from asifdb.context import Platform
from asifdb.errors import Conflict, InvalidInput
from asifdb.experiments.datasets import LabelledSet
from asifdb.services import pairs
from asifdb.services.classify import Options
from asifdb.services.evaluation import Evaluation, evaluate, read_folder
from tests.integration.experiments.conftest import ANCHOR_PAIRS, Data
from tests.samples import TEST_ROOTS


def _evaluate(platform: Platform, test: LabelledSet, **options: object) -> Evaluation:
    return evaluate(
        roots=TEST_ROOTS,
        sessions=platform.sessions,
        live=platform.live,
        encoders=platform.encoders,
        folder=test.folder,
        templates=test.templates,
        classnames=test.classnames,
        limit_per_class=test.limit_per_class,
        **options,  # type: ignore[arg-type]
    )


def test_accuracy_counts_every_image_of_every_class(
    lab: Callable[[str], Platform], data: Data
) -> None:
    platform = lab("evaluation")
    result = _evaluate(platform, data.tiny_val, batch_size=5, options=Options(k=50, p=4))

    # Names come from the classnames file (wnid -> name), images from each class folder.
    assert result.classes == ("goldfish", "European fire salamander", "bullfrog", "tailed frog")
    assert result.images == 12 and result.usable_pairs == ANCHOR_PAIRS
    assert result.top1 == sum(r.label == r.true_label for r in result.predictions) / 12
    assert result.top1 <= result.top5 == 1.0  # four classes: the true one is always in the top 5
    assert result.chance == 0.25
    assert set(result.per_class) == set(result.classes)
    for r in result.predictions:
        assert r.top[0] == r.label and len(r.scores) == 4
        assert max(r.scores) == r.scores[result.classes.index(r.label)]
    assert result.summary().k == 50 and result.summary().method == "exact"
    assert all(r.prediction_id is None for r in result.predictions)


def test_recorded_evaluations_keep_each_prediction_with_its_evidence(
    lab: Callable[[str], Platform], data: Data
) -> None:
    platform = lab("evaluation_recorded")
    two_a_class = replace(data.cifar_test, limit_per_class=2)
    result = _evaluate(platform, two_a_class, record=True, evidence_limit=7, client="ci")

    ids = [r.prediction_id for r in result.predictions]
    assert len(ids) == 20 and None not in ids
    with platform.sessions() as session:
        rows = session.execute(
            text(
                "SELECT p.predicted_label, p.channel, count(e.rank) FROM predictions p "
                "JOIN prediction_evidence e ON e.prediction_id = p.id "
                "WHERE p.id = ANY(:ids) GROUP BY p.id ORDER BY p.id"
            ),
            {"ids": ids},
        ).all()
    assert [r[0] for r in rows] == [r.label for r in result.predictions]
    assert {(r[1], r[2]) for r in rows} == {("eval", 7)}


def test_a_model_change_during_an_evaluation_is_refused(
    lab: Callable[[str], Platform], data: Data
) -> None:
    platform = lab("evaluation_changed")

    def delete_a_pair_after_the_first_batch(done: int, total: int) -> None:
        if done == 10:
            with platform.sessions.begin() as session:
                first = session.execute(text("SELECT min(id) FROM usable_pairs")).scalar_one()
                pairs.delete(session, pair_id=first, actor="ci", reason="test")

    with pytest.raises(Conflict, match="changed during the evaluation"):
        _evaluate(
            platform, data.cifar_test, batch_size=10, on_batch=delete_a_pair_after_the_first_batch
        )


def test_bad_folders_are_clear_errors(tmp_path: Path, data: Data) -> None:
    with pytest.raises(InvalidInput, match="not a folder"):
        read_folder(tmp_path / "missing", roots=TEST_ROOTS)
    with pytest.raises(InvalidInput, match="no images"):
        read_folder(tmp_path, roots=TEST_ROOTS)
    with pytest.raises(InvalidInput, match="at least 1"):
        read_folder(data.cifar_test.folder, limit_per_class=0, roots=TEST_ROOTS)
    assert (
        len(read_folder(data.cifar_test.folder, limit_per_class=1, roots=TEST_ROOTS).images) == 10
    )
