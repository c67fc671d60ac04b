"""ExactTopK: exact against the dense oracle, independent of chunking, and its edge cases."""

import numpy as np
import pytest
import torch

from asifdb.engine import ExactTopK, normalise
from asifdb.engine.topk import _ScanBound
from tests.unit.engine.engine_data import clustered
from tests.unit.engine.engine_reference import boundary_gap, top_k


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return clustered(rng, 6000, 48), clustered(rng, 70, 48)


def test_matches_dense_reference(data: tuple[np.ndarray, np.ndarray]) -> None:
    anchors, queries = data
    assert boundary_gap(queries, anchors, 200) > 1e-6  # no float32/float64 near-tie
    indices, sims = ExactTopK(anchors, chunk_size=1000).search(queries, 200)
    ref_indices, ref_sims = top_k(queries, anchors, 200)
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_allclose(sims, ref_sims, atol=2e-7)
    assert indices.dtype == np.int64 and sims.dtype == np.float32


@pytest.mark.parametrize(
    ("dtype", "scan_dtype"),
    [
        (torch.float32, None),
        (torch.bfloat16, None),
        (torch.float32, torch.bfloat16),
        (torch.float32, torch.int8),
    ],
)
@pytest.mark.parametrize(("n", "chunk_size"), [(300, 1), (1500, 37), (6000, 1000), (6000, 4096)])
def test_chunked_equals_one_chunk_bit_for_bit(
    data: tuple[np.ndarray, np.ndarray],
    dtype: torch.dtype,
    scan_dtype: torch.dtype | None,
    n: int,
    chunk_size: int,
) -> None:
    anchors, queries = data[0][:n], data[1]
    whole = ExactTopK(anchors, dtype=dtype, chunk_size=n).search(queries, 120)
    chunked = ExactTopK(anchors, dtype=dtype, scan_dtype=scan_dtype, chunk_size=chunk_size).search(
        queries, 120
    )
    np.testing.assert_array_equal(chunked[0], whole[0])
    np.testing.assert_array_equal(chunked[1], whole[1])


def test_a_bfloat16_scan_of_float32_anchors_gives_the_float32_results() -> None:
    rng = np.random.default_rng(6)
    anchors, queries = clustered(rng, 20_000, 96, clusters=200), clustered(rng, 40, 96, 200)
    exact = ExactTopK(anchors).search(queries, 800)
    fast = ExactTopK(anchors, scan_dtype=torch.bfloat16, chunk_size=8192)
    np.testing.assert_array_equal(fast.search(queries, 800)[0], exact[0])
    np.testing.assert_array_equal(fast.search(queries, 800)[1], exact[1])
    assert fast.nbytes > 1.4 * ExactTopK(anchors).nbytes
    with pytest.raises(ValueError, match="scanned in bfloat16"):
        ExactTopK(anchors, dtype=torch.bfloat16, scan_dtype=torch.float32)


@pytest.mark.parametrize("chunk_size", [8192, 20_000])
def test_an_int8_scan_of_float32_anchors_gives_the_float32_results(chunk_size: int) -> None:
    rng = np.random.default_rng(16)
    anchors, queries = clustered(rng, 20_000, 96, clusters=200), clustered(rng, 40, 96, 200)
    exact = ExactTopK(anchors).search(queries, 800)
    fast = ExactTopK(anchors, scan_dtype=torch.int8, chunk_size=chunk_size)
    for got, want in zip(fast.search(queries, 800), exact, strict=True):
        np.testing.assert_array_equal(got, want)
    for i in (0, 7):  # one query at a time takes the matrix-vector shape
        for got, want in zip(fast.search(queries[i : i + 1], 800), exact, strict=True):
            np.testing.assert_array_equal(got, want[i : i + 1])
    assert 1.2 * ExactTopK(anchors).nbytes < fast.nbytes < 1.3 * ExactTopK(anchors).nbytes
    with pytest.raises(ValueError, match="scanned in bfloat16"):
        ExactTopK(anchors, dtype=torch.bfloat16, scan_dtype=torch.int8)


def test_the_int8_bound_holds_where_quantisation_hurts_most() -> None:
    """Rows with one large component quantise the rest coarsely; near-ties everywhere."""
    rng = np.random.default_rng(17)
    anchors = rng.standard_normal((5000, 64)).astype(np.float32) * 0.05
    anchors[:, 0] += 1.0
    anchors[::7, 1] += 3.0
    queries = anchors[rng.integers(0, 5000, 30)] + 0.01 * rng.standard_normal((30, 64))
    exact = ExactTopK(anchors).search(queries, 300)
    fast = ExactTopK(anchors, scan_dtype=torch.int8, chunk_size=999)
    for got, want in zip(fast.search(queries, 300), exact, strict=True):
        np.testing.assert_array_equal(got, want)


def _near_ties(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Anchors that differ from one another by about bfloat16's rounding: a scan in bfloat16
    orders them differently from float32, so only a sound bound finds the float32 top-k."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(256)
    anchors = base + 0.02 * rng.standard_normal((6000, 256))
    queries = base + 0.05 * rng.standard_normal((12, 256))
    return anchors.astype(np.float32), queries.astype(np.float32)


def test_the_bfloat16_bound_holds_on_near_ties(monkeypatch: pytest.MonkeyPatch) -> None:
    anchors, queries = _near_ties(21)
    exact = ExactTopK(anchors).search(queries, 200)
    fast = ExactTopK(anchors, scan_dtype=torch.bfloat16, chunk_size=1500)
    for got, want in zip(fast.search(queries, 200), exact, strict=True):
        np.testing.assert_array_equal(got, want)
    # The anchors' rounding enters the bound as measured: well under the worst case |a| 2^-8.
    assert 0 < fast._quantisation_error < 0.5 * 2.0**-8
    # These near-ties need the bound: a scan trusted as exact loses the float32 top-k.
    monkeypatch.setattr(
        ExactTopK, "_bound", lambda self, q, qs, scan: _ScanBound(np.zeros(len(q)), 0.0)
    )
    assert not np.array_equal(fast.search(queries, 200)[0], exact[0])


def test_one_query_at_a_time_equals_the_batch(data: tuple[np.ndarray, np.ndarray]) -> None:
    anchors, queries = data
    index = ExactTopK(anchors, dtype=torch.bfloat16, chunk_size=2048)
    batch = index.search(queries, 100)
    for i in (0, 33, 69):
        one = index.search(queries[i : i + 1], 100)
        np.testing.assert_array_equal(one[0][0], batch[0][i])
        np.testing.assert_array_equal(one[1][0], batch[1][i])


def test_bfloat16_storage_is_exact_over_the_rounded_anchors(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    anchors, queries = data
    # bfloat16 storage rounds the unit anchors; the dot products are with those rounded rows.
    rounded = torch.from_numpy(normalise(anchors)).bfloat16().double().numpy()
    sims = normalise(queries).astype(np.float64) @ rounded.T
    order = np.argsort(-sims, axis=1, kind="stable")
    ranked = np.take_along_axis(sims, order, axis=1)
    assert np.min(ranked[:, 149] - ranked[:, 150]) > 1e-6  # no float32 near-tie at the cut
    indices, got = ExactTopK(anchors, dtype=torch.bfloat16, chunk_size=999).search(queries, 150)
    np.testing.assert_array_equal(indices, order[:, :150])
    np.testing.assert_allclose(got, ranked[:, :150], atol=2e-7)


def test_fewer_anchors_than_k_keeps_all_of_them() -> None:
    rng = np.random.default_rng(1)
    anchors, queries = rng.standard_normal((7, 5)), rng.standard_normal((3, 5))
    indices, sims = ExactTopK(anchors).search(queries, 800)
    assert indices.shape == (3, 7)
    np.testing.assert_array_equal(np.sort(indices, axis=1), np.tile(np.arange(7), (3, 1)))
    assert np.all(np.diff(sims, axis=1) <= 0)


def test_k_equals_one_is_the_nearest_anchor(data: tuple[np.ndarray, np.ndarray]) -> None:
    anchors, queries = data
    indices, _ = ExactTopK(anchors, chunk_size=500).search(queries, 1)
    np.testing.assert_array_equal(indices[:, 0], top_k(queries, anchors, 1)[0][:, 0])


def test_ties_go_to_the_smaller_key_even_across_chunks() -> None:
    rng = np.random.default_rng(2)
    base = rng.standard_normal((50, 8))
    # 10 copies of anchor 0 spread over chunks, plus scaled copies (same cosine).
    anchors = np.concatenate([base, np.repeat(base[:1], 10, axis=0) * 3.0])
    query = base[:1] + 1e-3 * rng.standard_normal((1, 8))
    for chunk_size in (1, 7, 64):
        indices, sims = ExactTopK(anchors, chunk_size=chunk_size).search(query, 5)
        np.testing.assert_array_equal(indices[0], [0, 50, 51, 52, 53])
        assert len(set(sims[0].tolist())) == 1
    ids = np.arange(len(anchors))[::-1] * 10  # keys descend as positions ascend
    indices, _ = ExactTopK(anchors, ids=ids, chunk_size=7).search(query, 3)
    np.testing.assert_array_equal(indices[0], sorted(ids[[0, *range(50, 60)]])[:3])


def test_half_precision_inputs_are_accepted() -> None:
    rng = np.random.default_rng(3)
    anchors = rng.standard_normal((300, 16)).astype(np.float16)
    queries = rng.standard_normal((4, 16)).astype(np.float32)
    from_half = ExactTopK(anchors).search(queries, 20)
    from_single = ExactTopK(anchors.astype(np.float32)).search(queries, 20)
    np.testing.assert_array_equal(from_half[0], from_single[0])
    from_bf16 = ExactTopK(torch.from_numpy(anchors.astype(np.float32)).bfloat16())
    assert from_bf16.search(queries, 20)[0].shape == (4, 20)


@pytest.mark.parametrize(
    ("anchors", "queries", "k", "message"),
    [
        (np.zeros((0, 4)), np.ones((1, 4)), 3, "anchors is empty"),
        (np.ones((5, 4)), np.zeros((0, 4)), 3, "queries is empty"),
        (np.ones((5, 4)), np.ones((2, 3)), 3, "3 dimensions but the anchors 4"),
        (np.ones((5, 4)), np.ones((2, 4)), 0, "k must be at least 1"),
        (np.ones(5), np.ones((2, 4)), 3, "2-d"),
        (np.ones((5, 4)), np.full((1, 4), np.nan), 3, "NaN"),
        (np.eye(5, 4), np.ones((1, 4)), 3, "row 4 is all zeros"),
        (np.ones((5, 4), dtype=np.int64), np.ones((1, 4)), 3, "floating point"),
    ],
)
def test_bad_input_is_a_clear_value_error(
    anchors: np.ndarray, queries: np.ndarray, k: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ExactTopK(anchors).search(queries, k)


@pytest.mark.parametrize(
    ("dtype", "scan_dtype"), [(torch.bfloat16, None), (torch.float32, torch.int8)]
)
def test_revoke_restore_add_equal_a_rebuilt_index(
    data: tuple[np.ndarray, np.ndarray], dtype: torch.dtype, scan_dtype: torch.dtype | None
) -> None:
    anchors, queries = data
    ids = np.arange(len(anchors)) * 3 + 1
    index = ExactTopK(
        anchors[:5000], ids=ids[:5000], dtype=dtype, scan_dtype=scan_dtype, chunk_size=1024
    )
    index.revoke(ids[100:3000])
    index.add(ids[5000:], anchors[5000:])
    index.restore(ids[2000:2500])
    index.revoke(ids[2000:2001])  # revoked twice: no-op the second time
    usable = np.ones(len(anchors), dtype=bool)
    usable[100:3000] = False
    usable[2001:2500] = True
    rebuilt = ExactTopK(anchors[usable], ids=ids[usable], dtype=dtype, chunk_size=777)
    assert index.n_anchors == rebuilt.n_anchors == usable.sum()
    for got, want in zip(index.search(queries, 250), rebuilt.search(queries, 250), strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="unknown anchor id 2"):
        index.revoke(np.array([2]))
    with pytest.raises(ValueError, match="exists"):
        index.add(ids[:1], anchors[:1])


def test_every_anchor_revoked_is_a_clear_error() -> None:
    index = ExactTopK(np.eye(3))
    index.revoke(np.arange(3))
    with pytest.raises(ValueError, match="no usable anchors"):
        index.search(np.ones((1, 3)), 2)


def test_a_failed_add_leaves_the_index_as_it_was() -> None:
    index = ExactTopK(np.eye(4), chunk_size=3)
    bad = np.ones((5, 4))
    bad[4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.arange(10, 15), bad)
    assert index.n_anchors == 4
    index.add(np.arange(10, 12), np.ones((2, 4)))
    np.testing.assert_array_equal(index.search(np.ones((1, 4)), 2)[0], [[10, 11]])


def test_a_usable_mask_equals_an_index_of_those_anchors_and_changes_nothing(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    anchors, queries = data
    ids = np.arange(len(anchors)) * 2 + 5
    index = ExactTopK(anchors, ids=ids, chunk_size=1000)
    usable = np.random.default_rng(3).random(len(anchors)) < 0.7
    subset = ExactTopK(anchors[usable], ids=ids[usable], chunk_size=1000)
    for got, want in zip(
        index.search(queries, 300, usable=usable), subset.search(queries, 300), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    assert index.n_anchors == len(anchors)  # the mask was for that search only
    with pytest.raises(ValueError, match="shape"):
        index.search(queries, 3, usable=usable[:-1])
    with pytest.raises(ValueError, match="no usable anchors"):
        index.search(queries, 3, usable=np.zeros(len(anchors), dtype=bool))


def test_unit_rows_are_shared_not_copied_and_searched_as_they_are(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    anchors, queries = data
    rows = normalise(anchors)
    ids = np.arange(len(rows)) + 100
    index = ExactTopK.of_unit_rows(rows, ids=ids, chunk_size=1000)
    assert all(np.shares_memory(block.numpy(), rows) for block in index._blocks)
    copied = ExactTopK(rows, ids=ids, chunk_size=1000)
    for got, want in zip(index.search(queries, 200), copied.search(queries, 200), strict=True):
        np.testing.assert_array_equal(got, want)
    int8 = ExactTopK.of_unit_rows(rows, ids=ids, scan_dtype=torch.int8, chunk_size=1000)
    for got, want in zip(int8.search(queries, 200), copied.search(queries, 200), strict=True):
        np.testing.assert_array_equal(got, want)
    index.add(np.array([1]), rows[:1])  # grows like any index
    assert index.search(rows[:1], 1)[0][0, 0] in (1, 100)
    with pytest.raises(ValueError, match="unit"):
        ExactTopK.of_unit_rows(rows * 2, ids=ids)
    with pytest.raises(ValueError, match="float32"):
        ExactTopK.of_unit_rows(rows.astype(np.float64), ids=ids)
