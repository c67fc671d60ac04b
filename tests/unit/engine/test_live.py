"""LiveCaptionReps equals a from-scratch computation after any sequence of edits."""

import numpy as np
import pytest
import torch

from asifdb.engine import ExactTopK, LiveCaptionReps, SparseRep, relative_representation
from tests.unit.engine.engine_data import clustered


def _scratch(
    captions: np.ndarray, pool: np.ndarray, usable: np.ndarray, k: int, dtype: torch.dtype
) -> SparseRep:
    ids = np.flatnonzero(usable) * 10 + 3  # pair ids, not positions
    index = ExactTopK(pool[usable], ids=ids, dtype=dtype, chunk_size=97)
    return relative_representation(captions, index, k=k, p=8)


def _assert_same(got: SparseRep, want: SparseRep) -> None:
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.similarities, want.similarities)
    np.testing.assert_array_equal(got.values, want.values)
    assert got.n_anchors == want.n_anchors


@pytest.mark.parametrize(
    ("seed", "dtype"), [(0, torch.float32), (1, torch.bfloat16), (2, torch.float32)]
)
def test_random_adds_revokes_restores_stay_exact(seed: int, dtype: torch.dtype) -> None:
    rng = np.random.default_rng(seed)
    pool = clustered(rng, 900, 24, clusters=6)
    pool[850:870] = pool[800]  # duplicates: ties that only the id order settles
    captions = clustered(rng, 12, 24, clusters=6)
    k = 40
    stored = np.zeros(len(pool), dtype=bool)
    stored[:500] = True
    usable = stored.copy()
    ids = np.arange(len(pool)) * 10 + 3
    live = LiveCaptionReps(captions, ids[:500], pool[:500], k=k, p=8, margin=10, dtype=dtype)
    _assert_same(live.representation(), _scratch(captions, pool, usable, k, dtype))
    for _ in range(25):
        op = rng.choice(["add", "revoke", "restore", "update"])
        if op == "add" and not stored.all():
            new = rng.choice(np.flatnonzero(~stored), size=min(40, (~stored).sum()), replace=False)
            live.add(ids[new], pool[new])
            stored[new] = usable[new] = True
        elif op == "revoke" and usable.sum() > 60:
            gone = rng.choice(np.flatnonzero(usable), size=int(rng.integers(1, 60)), replace=False)
            live.revoke(ids[gone])
            usable[gone] = False
        elif op == "restore" and (stored & ~usable).any():
            back = np.flatnonzero(stored & ~usable)
            back = rng.choice(back, size=min(len(back), int(rng.integers(1, 50))), replace=False)
            live.restore(ids[back])
            usable[back] = True
        elif op == "update":
            target = usable.copy()
            target[rng.choice(len(pool), size=30, replace=False)] ^= True
            live.update_to(ids[target], lambda wanted: pool[(wanted - 3) // 10])
            stored |= target
            usable = target
        _assert_same(live.representation(), _scratch(captions, pool, usable, k, dtype))
    # The margin absorbs most edits: far fewer rows recomputed than rows x edits.
    assert live.rows_recomputed < 12 * 25


def test_real_caption_embeddings_stay_exact(real: dict[str, np.ndarray]) -> None:
    anchors, captions = real["anchor_text"], real["caption_text"]
    ids = np.arange(len(anchors)) * 10 + 3
    usable = np.ones(len(anchors), dtype=bool)
    live = LiveCaptionReps(captions, ids, anchors, k=50, p=8, margin=15)
    rng = np.random.default_rng(7)
    for _ in range(6):
        flip = rng.choice(len(anchors), size=25, replace=False)
        usable[flip] ^= True
        live.update_to(ids[usable], lambda wanted: anchors[(wanted - 3) // 10])
        _assert_same(live.representation(), _scratch(captions, anchors, usable, 50, torch.float32))


def test_fewer_usable_anchors_than_k_and_back() -> None:
    rng = np.random.default_rng(3)
    pool, captions = clustered(rng, 60, 8), clustered(rng, 4, 8)
    ids = np.arange(60) * 10 + 3
    usable = np.ones(60, dtype=bool)
    live = LiveCaptionReps(captions, ids, pool, k=50, p=8, margin=5)
    usable[5:40] = False
    live.revoke(ids[5:40])
    assert live.representation().indices.shape == (4, 25)
    _assert_same(live.representation(), _scratch(captions, pool, usable, 50, torch.float32))
    usable[5:40] = True
    live.restore(ids[5:40])
    _assert_same(live.representation(), _scratch(captions, pool, usable, 50, torch.float32))
    live.revoke(ids)
    with pytest.raises(ValueError, match="no usable anchors"):
        live.representation()


def test_an_added_pair_tied_with_the_last_candidate_enters_by_id() -> None:
    rng = np.random.default_rng(4)
    caption = rng.standard_normal((1, 16))
    close = caption + 0.1 * rng.standard_normal((5, 16))
    duplicate = caption + 0.5 * rng.standard_normal((1, 16))
    far = rng.standard_normal((30, 16))
    pool = np.concatenate([close, np.repeat(duplicate, 12, axis=0), far])
    ids = np.concatenate([np.arange(1000, 1005), np.arange(2000, 2012), np.arange(3000, 3030)])
    start = np.r_[0:15, 17:47]  # duplicates 2010 and 2011 come later
    live = LiveCaptionReps(caption, ids[start], pool[start], k=8, p=8, margin=2)
    live.add(np.array([1500]), duplicate)  # same similarity as the last candidate, smaller id
    live.add(ids[15:17], pool[15:17])
    usable = np.r_[ids, 1500]
    everything = np.concatenate([pool, duplicate])
    want = relative_representation(caption, ExactTopK(everything, ids=usable), k=8, p=8)
    _assert_same(live.representation(), want)
    np.testing.assert_array_equal(live.representation().indices[0, 5:], [1500, 2000, 2001])


def test_gaussian_anchors_keyed_by_position_through_update_to() -> None:
    # Unstructured data: most new anchors fall below every row's floor.
    rng = np.random.default_rng(3)
    captions = rng.normal(size=(15, 20)).astype(np.float32)
    every = rng.normal(size=(3000, 20)).astype(np.float32)
    usable = set(range(0, 3000, 3))
    ids = np.array(sorted(usable))
    live = LiveCaptionReps(captions, ids, every[ids], k=40, p=8, margin=8)
    for _ in range(30):
        removed = rng.choice(sorted(usable), size=int(rng.integers(0, 60)), replace=False)
        added = rng.choice(sorted(set(range(3000)) - usable), size=int(rng.integers(0, 60)))
        usable = (usable - set(removed.tolist())) | set(added.tolist())
        now = np.array(sorted(usable))
        live.update_to(now, lambda wanted: every[wanted])
        want = relative_representation(captions, ExactTopK(every[now], ids=now), k=40, p=8)
        _assert_same(live.representation(), want)
