"""Scores (image x caption) against the dense oracle; sparse products against dense ones."""

import numpy as np
import pytest

from asifdb.engine import relative_representation, scores, sparse_scores
from tests.unit.engine.engine_data import clustered
from tests.unit.engine.engine_reference import scores as dense_scores


def test_random_pairs_match_the_dense_definition() -> None:
    rng = np.random.default_rng(0)
    anchor_image, anchor_text = clustered(rng, 2500, 40), clustered(rng, 2500, 24)
    image, text = clustered(rng, 30, 40), clustered(rng, 25, 24)
    got = scores(image, text, anchor_image, anchor_text, k=150, p=8, chunk_size=600)
    want = dense_scores(image, text, anchor_image, anchor_text, 150, 8)
    assert got.shape == (30, 25) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-6)


def test_real_pairs_match_the_dense_definition(real: dict[str, np.ndarray]) -> None:
    args = (real["query_image"], real["caption_text"], real["anchor_image"], real["anchor_text"])
    for k, p in [(60, 8), (800, 8), (30, 1)]:
        np.testing.assert_allclose(scores(*args, k=k, p=p), dense_scores(*args, k, p), atol=2e-6)


def test_sparse_product_equals_the_dense_product() -> None:
    rng = np.random.default_rng(1)
    anchors = clustered(rng, 400, 8)
    a = relative_representation(clustered(rng, 9, 8), anchors, k=60, p=4)
    b = relative_representation(clustered(rng, 11, 8), anchors, k=35, p=4)
    np.testing.assert_allclose(sparse_scores(a, b), a.dense() @ b.dense().T, atol=1e-6)


def test_pairs_must_line_up() -> None:
    with pytest.raises(ValueError, match="3 anchor images but 4 anchor captions"):
        scores(np.ones((1, 2)), np.ones((1, 3)), np.eye(3, 2), np.eye(4, 3), k=2, p=8)
    a = relative_representation(np.ones((1, 2)), np.eye(2), k=1, p=8)
    b = relative_representation(np.ones((1, 2)), np.eye(3, 2) + 0.1, k=1, p=8)
    with pytest.raises(ValueError, match="different anchor sets"):
        sparse_scores(a, b)
