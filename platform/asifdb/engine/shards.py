"""The coordinator's merge of sharded exact top-k: each shard's own top k in, the global top k out.

Called by whatever fans a query out over shards (docs/sharding.md); `search_shards` is the
in-process fan-out the tests and benchmarks/engine/bench_shards.py use.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from asifdb.engine.embeddings import ArrayLike
from asifdb.engine.topk import ExactTopK


@dataclass(frozen=True)
class ShardAnswer:
    """One shard's answer to a batch of queries: its exact top k over its usable anchors.

    `keys` (n, k_s) int64 pair ids, `sims` (n, k_s) float32, rows sorted by similarity
    descending, ties by key ascending (`ExactTopK.search`); key -1 pads a row. `version`: the
    model version the shard's usable set was at when it answered.
    """

    version: int
    keys: np.ndarray
    sims: np.ndarray


def merge_top_k(answers: Sequence[ShardAnswer], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The global exact top k of S shards' answers -> keys (n, k') int64, sims (n, k') float32.

    k' = min(k, candidates a row has); a row with fewer is padded with key -1, similarity
    -inf. Sorted by similarity descending, ties by key ascending: what `ExactTopK.search`
    over the union of the shards' usable anchors returns, provided each shard answered with
    its full top k (min(k, its usable anchors)), never a k / S share: the global top k may
    all lie on one shard. Every shard must answer at one model version (a ValueError names
    the ones that differ), and a pair id may sit on one shard only.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    if not answers:
        raise ValueError("no shard answered: a partial answer is refused, so is none")
    versions = sorted({a.version for a in answers})
    if len(versions) > 1:
        raise ValueError(f"shards answered at model versions {versions}: one version per query")
    n = len(answers[0].keys)
    for i, a in enumerate(answers):
        if a.keys.shape != a.sims.shape or a.keys.ndim != 2 or len(a.keys) != n:
            raise ValueError(f"shard {i} answered keys {a.keys.shape}, sims {a.sims.shape}")
        if a.keys.shape[1] > k:
            raise ValueError(f"shard {i} answered {a.keys.shape[1]} neighbours for k = {k}")
    keys = np.concatenate([a.keys.astype(np.int64, copy=False) for a in answers], axis=1)
    sims = np.concatenate([a.sims.astype(np.float32, copy=False) for a in answers], axis=1)
    padded = keys < 0
    # Padding sorts last: no similarity beats it below, no key above.
    order_sims = np.where(padded, np.inf, -sims)
    order_keys = np.where(padded, np.iinfo(np.int64).max, keys)
    order = np.lexsort((order_keys, order_sims), axis=1)[:, :k]
    out_keys = np.take_along_axis(keys, order, axis=1)
    out_sims = np.take_along_axis(sims, order, axis=1)
    hole = out_keys < 0
    out_sims[hole] = -np.inf
    width = int((~hole).sum(axis=1).max(initial=0))
    out_keys, out_sims = out_keys[:, :width], out_sims[:, :width]
    ranked = np.sort(np.where(out_keys < 0, -1 - np.arange(width), out_keys), axis=1)
    if np.any(ranked[:, 1:] == ranked[:, :-1]):
        raise ValueError("a pair id was answered by two shards: shards must partition the pairs")
    return out_keys, out_sims


def search_shards(
    shards: Sequence[ExactTopK],
    queries: ArrayLike,
    k: int,
    *,
    version: int,
    usable: Sequence[np.ndarray | None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each shard's full exact top k at `version` (`usable[i]`: shard i's snapshot of its
    usable flags, as `ExactTopK.search` takes it), merged; a shard with no usable anchor
    contributes nothing. The fan-out of one process: a deployment runs each shard's search on
    its own node."""
    flags = usable if usable is not None else [None] * len(shards)
    if len(flags) != len(shards):
        raise ValueError(f"{len(flags)} usable snapshots for {len(shards)} shards")
    answers = []
    for shard, own in zip(shards, flags, strict=True):
        n_usable = shard.n_anchors if own is None else int(np.count_nonzero(own))
        if n_usable:
            answers.append(ShardAnswer(version, *shard.search(queries, k, usable=own)))
    if not answers:
        raise ValueError("no usable anchors: every anchor is revoked")
    return merge_top_k(answers, k)
