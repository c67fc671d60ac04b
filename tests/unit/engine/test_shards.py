"""Sharded exact top-k: the merge of every shard's full top k is ExactTopK over the union."""

import numpy as np
import pytest

from asifdb.engine import ExactTopK
from asifdb.engine.shards import ShardAnswer, merge_top_k, search_shards

D = 128
K = 100


def packed(rng: np.random.Generator, n: int, classes: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(n, D) unit rows whose cosines pack like real embeddings' (mean ~0.35, std ~0.075: a
    shared direction, a class centre and noise), and each row's class."""
    shared = rng.standard_normal(D)
    shared /= np.linalg.norm(shared)
    centres = rng.standard_normal((classes, D)) / np.sqrt(D)
    label = rng.integers(0, classes, n)
    noise = rng.standard_normal((n, D)) / np.sqrt(D)
    rows = 0.57 * shared + 0.35 * centres[label] + 0.72 * noise
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32), label


def split(rows: np.ndarray, ids: np.ndarray, shard_of: np.ndarray, s: int) -> list[ExactTopK]:
    return [ExactTopK(rows[shard_of == i], ids=ids[shard_of == i], chunk_size=97) for i in range(s)]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(24)
    rows, label = packed(rng, 3000)
    queries, _ = packed(np.random.default_rng(25), 16)
    return rows, label, queries


def test_the_data_is_packed_like_real_embeddings(
    data: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    rows, _, _ = data
    sims = rows[:1000] @ rows[:1000].T
    upper = sims[np.triu_indices(1000, 1)]
    assert 0.3 < upper.mean() < 0.4 and 0.05 < upper.std() < 0.1


@pytest.mark.parametrize("s", [2, 3, 8])
def test_merged_shards_equal_exact_top_k_over_the_union(
    data: tuple[np.ndarray, np.ndarray, np.ndarray], s: int
) -> None:
    rows, _, queries = data
    ids = np.random.default_rng(s).permutation(10 * len(rows))[: len(rows)].astype(np.int64)
    shards = split(rows, ids, ids % s, s)  # distributed by pair id hash
    keys, sims = search_shards(shards, queries, K, version=7)
    want_keys, want_sims = ExactTopK(rows, ids=ids).search(queries, K)
    np.testing.assert_array_equal(keys, want_keys)
    np.testing.assert_array_equal(sims, want_sims)


def test_a_query_whose_neighbours_all_sit_on_one_shard(
    data: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    rows, label, _ = data
    ids = np.arange(len(rows), dtype=np.int64)
    query = rows[label == 3].mean(axis=0, keepdims=True)
    want_keys, want_sims = ExactTopK(rows, ids=ids).search(query, K)
    # Shard 0 holds the query's class (mostly its top k, as a class ingested together would
    # be) and the rest of its top k: the global top k is shard 0's alone.
    shard_of = 1 + ids % 3
    shard_of[label == 3] = 0
    shard_of[want_keys[0]] = 0
    assert np.mean(label[want_keys[0]] == 3) > 0.8
    shards = split(rows, ids, shard_of, 4)
    keys, sims = search_shards(shards, query, K, version=1)
    np.testing.assert_array_equal(keys, want_keys)
    np.testing.assert_array_equal(sims, want_sims)
    # What a k / S per-shard cap would keep: a quarter of the true neighbours.
    capped = [ShardAnswer(1, *shard.search(query, K // 4)) for shard in shards]
    kept = np.intersect1d(merge_top_k(capped, K)[0], want_keys).size
    assert kept == K // 4


def test_revoked_rows_on_some_shards(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    rows, _, queries = data
    ids = np.arange(len(rows), dtype=np.int64) * 3 + 5
    shard_of = ids % 4
    shards = split(rows, ids, shard_of, 4)
    rng = np.random.default_rng(9)
    revoked = ids[(shard_of == 1) & (rng.random(len(ids)) < 0.4)]
    shards[1].revoke(revoked)
    # Shard 2 through a reader's snapshot: all but 30 rows revoked (fewer usable than k);
    # shard 3 has none usable and answers nothing.
    snapshot = np.zeros(int((shard_of == 2).sum()), dtype=bool)
    snapshot[rng.choice(len(snapshot), 30, replace=False)] = True
    usable = [None, None, snapshot, np.zeros(int((shard_of == 3).sum()), dtype=bool)]
    union = ExactTopK(rows, ids=ids)
    union.revoke(np.concatenate([revoked, ids[shard_of == 3]]))
    union.revoke(ids[shard_of == 2][~snapshot])
    keys, sims = search_shards(shards, queries, K, version=2, usable=usable)
    want_keys, want_sims = union.search(queries, K)
    np.testing.assert_array_equal(keys, want_keys)
    np.testing.assert_array_equal(sims, want_sims)


def test_ties_go_to_the_smaller_key_across_shards(
    data: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    rows, _, _ = data
    # Twelve copies of one row (same cosine to any query) under keys spread over 3 shards.
    table = np.concatenate([rows[1:200], np.repeat(rows[:1], 12, axis=0)])
    ids = np.concatenate([np.arange(1000, 1199), [90, 12, 55, 7, 31, 64, 2, 88, 40, 19, 73, 5]])
    query = rows[:1] + 1e-3
    shards = split(table, ids, np.arange(len(ids)) % 3, 3)
    keys, sims = search_shards(shards, query, 5, version=0)
    want_keys, want_sims = ExactTopK(table, ids=ids).search(query, 5)
    np.testing.assert_array_equal(keys[0], [2, 5, 7, 12, 19])
    np.testing.assert_array_equal(keys, want_keys)
    np.testing.assert_array_equal(sims, want_sims)


def test_padded_answers_keep_their_rows_short() -> None:
    a = ShardAnswer(4, np.array([[3, -1], [1, 2]]), np.array([[0.5, 0], [0.9, 0.1]], np.float32))
    b = ShardAnswer(4, np.array([[-1, -1], [8, -1]]), np.zeros((2, 2), np.float32))
    keys, sims = merge_top_k([a, b], 3)
    np.testing.assert_array_equal(keys, [[3, -1, -1], [1, 2, 8]])
    assert sims[0, 0] == np.float32(0.5) and np.all(np.isneginf(sims[0, 1:]))


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ([], "no shard answered"),
        (
            [ShardAnswer(1, np.array([[1]]), np.ones((1, 1), np.float32))] * 1
            + [ShardAnswer(2, np.array([[2]]), np.ones((1, 1), np.float32))],
            r"model versions \[1, 2\]",
        ),
        ([ShardAnswer(1, np.array([[1]]), np.ones((1, 1), np.float32))] * 2, "two shards"),
        ([ShardAnswer(1, np.arange(4)[None], np.ones((1, 4), np.float32))], "4 neighbours"),
    ],
)
def test_a_merge_that_would_be_wrong_is_refused(answers: list[ShardAnswer], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        merge_top_k(answers, 3)
