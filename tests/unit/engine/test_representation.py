"""Relative representations against the dense oracle, on random and real embeddings."""

import numpy as np
import pytest
import torch

from asifdb.engine import ExactTopK, from_neighbours, reindex, relative_representation
from tests.unit.engine.engine_data import clustered
from tests.unit.engine.engine_reference import boundary_gap
from tests.unit.engine.engine_reference import relative_representation as dense_rep


@pytest.mark.parametrize(("n", "k", "p"), [(500, 50, 8), (40, 800, 8), (300, 1, 3), (200, 37, 1)])
def test_gaussian_embeddings_match_the_dense_definition(n: int, k: int, p: float) -> None:
    rng = np.random.default_rng(n + k)
    queries, anchors = rng.normal(size=(23, 32)), rng.normal(size=(n, 32))
    rep = relative_representation(queries, anchors, k, p)
    assert rep.indices.shape == (23, min(k, n))
    np.testing.assert_allclose(rep.dense(), dense_rep(queries, anchors, k, p), atol=2e-6)


def test_random_embeddings_match_the_dense_definition() -> None:
    rng = np.random.default_rng(0)
    anchors, queries = clustered(rng, 3000, 32), clustered(rng, 40, 32)
    assert boundary_gap(queries, anchors, 100) > 1e-6
    rep = relative_representation(queries, anchors, k=100, p=8, chunk_size=700)
    np.testing.assert_allclose(rep.dense(), dense_rep(queries, anchors, 100, 8), atol=1e-6)
    assert rep.indices.shape == rep.values.shape == rep.similarities.shape == (40, 100)
    assert rep.values.dtype == np.float32 and rep.n_anchors == 3000
    np.testing.assert_allclose(np.linalg.norm(rep.values, axis=1), 1, rtol=1e-6)


@pytest.mark.parametrize(("side", "k"), [("image", 50), ("text", 50), ("image", 800)])
def test_real_embeddings_match_the_dense_definition(
    real: dict[str, np.ndarray], side: str, k: int
) -> None:
    anchors = real[f"anchor_{side}"]
    queries = real["query_image"] if side == "image" else real["caption_text"]
    assert boundary_gap(queries, anchors, k) > 1e-6
    rep = relative_representation(queries, anchors, k=k, p=8)
    np.testing.assert_allclose(rep.dense(), dense_rep(queries, anchors, k, 8), atol=1e-6)
    assert rep.indices.shape[1] == min(k, len(anchors))


def test_odd_and_even_powers_of_negative_similarities_follow_the_reference() -> None:
    # The reference code raises the kept cosine to p as is: (-s)**8 > 0, (-s)**3 < 0.
    anchors = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.2]])
    query = np.array([[1.0, 0.1]])
    even = relative_representation(query, anchors, k=3, p=8)
    odd = relative_representation(query, anchors, k=3, p=3)
    assert even.similarities[0, 2] < 0
    assert even.values[0, 2] > 0 and odd.values[0, 2] < 0
    np.testing.assert_allclose(even.dense(), dense_rep(query, anchors, 3, 8), atol=1e-7)
    np.testing.assert_allclose(odd.dense(), dense_rep(query, anchors, 3, 3), atol=1e-7)
    with pytest.raises(ValueError, match="not an integer and a kept similarity is negative"):
        relative_representation(query, anchors, k=3, p=2.5)
    assert relative_representation(query, anchors, k=2, p=2.5).values.shape == (1, 2)


def test_p_below_one_and_k_below_one_are_rejected() -> None:
    with pytest.raises(ValueError, match="p must be at least 1"):
        relative_representation(np.ones((1, 2)), np.eye(2), k=1, p=0.5)
    with pytest.raises(ValueError, match="k must be at least 1"):
        relative_representation(np.ones((1, 2)), np.eye(2), k=0, p=8)


def test_a_row_whose_powers_are_all_zero_stays_zero() -> None:
    rep = from_neighbours(np.array([[0, 1]]), np.array([[0.0, 0.0]]), 8, 2)
    np.testing.assert_array_equal(rep.values, [[0.0, 0.0]])


def test_any_topk_plugs_in_and_padding_counts_as_absent() -> None:
    class Padded:
        """A TopK that found only 2 of 3 for the second query (as an ANN index may)."""

        def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
            assert np.allclose(np.linalg.norm(queries, axis=1), 1)  # given unit queries
            return np.array([[7, 3, 5], [3, 7, -1]]), np.array([[0.9, 0.5, 0.2], [0.8, 0.4, 0]])

    rep = relative_representation(np.ones((2, 4)), Padded(), k=3, p=2)
    assert rep.n_anchors is None and rep.values[1, 2] == 0
    np.testing.assert_allclose(rep.values[1, :2], np.array([0.64, 0.16]) / np.hypot(0.64, 0.16))
    with pytest.raises(ValueError, match="apply to an anchor matrix"):
        relative_representation(np.ones((2, 4)), Padded(), k=3, p=2, chunk_size=10)


def test_an_exact_index_with_ids_then_reindex_gives_the_positional_representation() -> None:
    rng = np.random.default_rng(4)
    anchors, queries = clustered(rng, 500, 16), clustered(rng, 5, 16)
    ids = np.arange(500) * 7 + 100
    by_id = relative_representation(queries, ExactTopK(anchors, ids=ids), k=40, p=8)
    by_position = relative_representation(queries, anchors, k=40, p=8)
    again = reindex(by_id, ids)
    np.testing.assert_array_equal(again.indices, by_position.indices)
    np.testing.assert_array_equal(again.values, by_position.values)
    with pytest.raises(ValueError, match="not in anchor_ids"):
        reindex(by_id, ids[ids != by_id.indices[0, 0]])


def test_bfloat16_anchors_stay_close_to_float32() -> None:
    rng = np.random.default_rng(5)
    anchors, queries = clustered(rng, 2000, 64), clustered(rng, 20, 64)
    full = relative_representation(queries, anchors, k=100, p=8)
    half = relative_representation(queries, anchors, k=100, p=8, dtype=torch.bfloat16)
    # Only anchors at the top-k boundary may swap, and p = 8 makes their weights tiny.
    same = [len(np.intersect1d(a, b)) for a, b in zip(half.indices, full.indices, strict=True)]
    assert np.mean(same) >= 99
    np.testing.assert_allclose(half.dense(), full.dense(), atol=1e-2)
