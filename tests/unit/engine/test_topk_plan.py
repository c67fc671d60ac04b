"""ExactTopK on real-like packed similarities: every scan copy, and the one `scan_plan` picks,
give the dense float32 top-k exactly; the plan drops a copy whose bound lets too much through."""

import numpy as np
import pytest
import torch

from asifdb.engine import ExactTopK, normalise
from tests.unit.engine.engine_data import clustered


def packed(rng: np.random.Generator, n: int, n_queries: int, d: int) -> tuple[np.ndarray, ...]:
    """Anchors and queries whose cosines pack like real image embeddings' (mean pairwise
    about 0.36, std 0.07, a query's 800th neighbour among 3,000 near 0.40): a shared
    direction, a low-rank spread and isotropic noise."""
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    basis = rng.standard_normal((24, d)) / np.sqrt(d)

    def draw(m: int) -> np.ndarray:
        x = np.sqrt(0.4) * u + 0.6 * rng.standard_normal((m, 24)) @ basis / np.sqrt(24)
        x = x + 0.6 * rng.standard_normal((m, d)) / np.sqrt(d)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    return draw(n), draw(n_queries)


def dense_float32(queries: np.ndarray, anchors: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """The float32 similarity of every (query, anchor), as the class defines it (float32
    products, numpy's row sum), all anchors at once; stable sort: ties to the smaller index."""
    a, q = normalise(anchors), normalise(queries)
    sims = np.stack([(a * row).sum(axis=1) for row in q])
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


@pytest.fixture(scope="module")
def real_like() -> tuple[np.ndarray, np.ndarray]:
    anchors, queries = packed(np.random.default_rng(24), 12_000, 40, 256)
    return anchors, queries


def test_the_data_is_packed_like_real_embeddings(real_like: tuple[np.ndarray, ...]) -> None:
    anchors, queries = real_like
    sample = anchors[:3000].astype(np.float64)
    pairwise = (sample @ sample.T)[np.triu_indices(3000, 1)]
    kth = np.sort(queries.astype(np.float64) @ sample.T, axis=1)[:, -800]
    assert 0.3 < pairwise.mean() < 0.42 and 0.05 < pairwise.std() < 0.09
    assert 0.35 < kth.mean() < 0.45


@pytest.mark.parametrize("scan_dtype", [torch.float32, torch.bfloat16, torch.int8])
@pytest.mark.parametrize("chunk_size", [5000, 65_536])
def test_every_scan_and_the_planned_one_give_the_dense_float32_top_k(
    real_like: tuple[np.ndarray, ...], scan_dtype: torch.dtype, chunk_size: int
) -> None:
    anchors, queries = real_like
    want = dense_float32(queries, anchors, 800)
    index = ExactTopK(anchors, scan_dtype=scan_dtype, chunk_size=chunk_size)
    for scan in (scan_dtype, torch.float32, None):  # the copy, the stored rows, the plan
        for got, expected in zip(index.search(queries, 800, scan=scan), want, strict=True):
            np.testing.assert_array_equal(got, expected)
        for i in (0, 17):  # one query: the matrix-vector shape, the rerank split by rows
            one = index.search(queries[i : i + 1], 800, scan=scan)
            for got, expected in zip(one, want, strict=True):
                np.testing.assert_array_equal(got, expected[i : i + 1])


def test_a_usable_mask_and_the_plan_give_the_dense_top_k_of_those_anchors(
    real_like: tuple[np.ndarray, ...],
) -> None:
    anchors, queries = real_like
    usable = np.random.default_rng(5).random(len(anchors)) < 0.6
    index = ExactTopK(anchors, scan_dtype=torch.int8, chunk_size=4096)
    order, sims = dense_float32(queries, anchors[usable], 300)
    for _ in range(2):  # the first search scans the int8 copy, the second what the plan says
        got_ids, got_sims = index.search(queries, 300, usable=usable)
        np.testing.assert_array_equal(got_ids, np.flatnonzero(usable)[order])
        np.testing.assert_array_equal(got_sims, sims)


def test_the_plan_leaves_an_int8_copy_whose_bound_lets_most_anchors_through(
    real_like: tuple[np.ndarray, ...],
) -> None:
    anchors, queries = real_like
    index = ExactTopK(anchors, scan_dtype=torch.int8)
    assert index.scan_plan() == torch.int8  # nothing measured yet: try the copy
    index.search(queries, 800)
    assert index.scan_plan() == torch.float32  # packed cosines: the int8 bound passes too many
    for _ in range(64):
        index.search(queries[:1], 800)
    assert index.scan_plan() == torch.int8  # tried again now and then
    with pytest.raises(ValueError, match="scan must be"):
        index.search(queries, 5, scan=torch.bfloat16)


def test_the_plan_keeps_a_copy_whose_bound_is_tight() -> None:
    rng = np.random.default_rng(8)
    anchors, queries = clustered(rng, 20_000, 96, clusters=200), clustered(rng, 16, 96, 200)
    for copy in (torch.bfloat16, torch.int8):
        index = ExactTopK(anchors, scan_dtype=copy)
        index.search(queries, 100)
        assert index.scan_plan() == copy
