"""Zero-shot classification (max and mean) and explanations that sum to the score."""

import numpy as np
import pytest

from asifdb.engine import (
    captions_for,
    class_scores,
    classify,
    explain,
    relative_representation,
    sparse_scores,
)
from tests.unit.engine.engine_data import clustered
from tests.unit.engine.engine_reference import scores as dense_scores


@pytest.fixture(scope="module")
def reps(real: dict[str, np.ndarray]) -> tuple:
    image = relative_representation(real["query_image"], real["anchor_image"], k=60, p=8)
    caption = relative_representation(real["caption_text"], real["anchor_text"], k=60, p=8)
    return image, caption, len(real["class_names"]), int(real["n_templates"])


def test_max_is_the_reference_argmax_over_every_caption(real: dict, reps: tuple) -> None:
    image, caption, n_classes, n_templates = reps
    result = classify(image, caption, n_classes, n_templates)
    dense = dense_scores(
        real["query_image"], real["caption_text"], real["anchor_image"], real["anchor_text"], 60, 8
    )
    np.testing.assert_array_equal(result.labels, np.argmax(dense, axis=1) // n_templates)
    assert result.aggregation == "max" and result.class_scores.shape == (40, n_classes)
    # Real pairs carry signal: 300 anchors over 200 classes, still far above 10 % chance.
    assert (result.labels == real["query_label"]).mean() >= 0.3


def test_mean_averages_a_class_over_its_templates(reps: tuple) -> None:
    image, caption, n_classes, n_templates = reps
    result = classify(image, caption, n_classes, n_templates, aggregation="mean")
    grouped = sparse_scores(image, caption).reshape(-1, n_classes, n_templates)
    np.testing.assert_allclose(result.class_scores, grouped.mean(axis=2), atol=1e-7)
    np.testing.assert_array_equal(result.labels, np.argmax(grouped.mean(axis=2), axis=1))
    assert result.aggregation == "mean"
    assert np.all(result.best_caption // n_templates == result.labels)


@pytest.mark.parametrize("aggregation", ["max", "mean"])
def test_contributions_sum_to_the_predicted_class_score(reps: tuple, aggregation: str) -> None:
    image, caption, n_classes, n_templates = reps
    result = classify(image, caption, n_classes, n_templates, aggregation=aggregation, top=None)
    for i, label in enumerate(result.labels):
        total = sum(c.contribution for c in result.explanations[i])
        assert total == pytest.approx(float(result.class_scores[i, label]), abs=1e-6)


def test_explanation_lists_shared_anchors_with_raw_cosines(real: dict, reps: tuple) -> None:
    image, caption, _, _ = reps
    parts = explain(image, 3, caption, [5])
    score = sparse_scores(image, caption)[3, 5]
    assert sum(p.contribution for p in parts) == pytest.approx(float(score), abs=1e-6)
    assert [p.contribution for p in parts] == sorted((p.contribution for p in parts), reverse=True)
    top = parts[0]
    query = real["query_image"][3].astype(np.float64)
    anchor = real["anchor_image"][top.anchor].astype(np.float64)
    cosine = query @ anchor / np.linalg.norm(query) / np.linalg.norm(anchor)
    assert top.image_similarity == pytest.approx(cosine, abs=1e-6)
    assert top.contribution == pytest.approx(
        float(image.values[3][image.indices[3] == top.anchor][0])
        * float(caption.values[5][caption.indices[5] == top.anchor][0]),
        rel=1e-6,
    )
    assert explain(image, 3, caption, [5], top=3) == parts[:3]


def test_captions_are_class_major() -> None:
    assert captions_for(["cat", "dog"], ["a {}", "the {}"]) == [
        "a cat",
        "the cat",
        "a dog",
        "the dog",
    ]
    with pytest.raises(ValueError, match="has no"):
        captions_for(["cat"], ["a photo"])


def test_class_scores_checks_its_grid_and_aggregation() -> None:
    rng = np.random.default_rng(0)
    s = rng.random((2, 6)).astype(np.float32)
    np.testing.assert_array_equal(class_scores(s, 3, 2), s.reshape(2, 3, 2).max(axis=2))
    with pytest.raises(ValueError, match="7 caption scores"):
        class_scores(rng.random((2, 7)), 3, 2)
    with pytest.raises(ValueError, match="unknown aggregation"):
        class_scores(s, 3, 2, "median")  # type: ignore[arg-type]


def test_ties_between_captions_go_to_the_first_as_the_reference() -> None:
    rng = np.random.default_rng(1)
    anchors = clustered(rng, 50, 6)
    caption_emb = np.repeat(clustered(rng, 1, 6), 4, axis=0)  # four identical captions
    image = relative_representation(clustered(rng, 3, 6), anchors, k=10, p=8)
    caption = relative_representation(caption_emb, anchors, k=10, p=8)
    assert np.all(classify(image, caption, 2, 2).labels == 0)
