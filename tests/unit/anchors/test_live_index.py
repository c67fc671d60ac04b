"""The live model's exact indexes: one shared copy of the anchors serves every view.

A view's representation must equal the paper's definition over that view's usable pairs
(the dense oracle), whatever version the index has grown to since, and what-if views (a view
less some pairs) must search the same rows, never a rounded copy.
"""

import numpy as np
import pytest
import torch

from asifdb import engine
from asifdb.anchors.live import IvfPolicy, LiveModel, View, fast_bfloat16, scan_dtypes
from asifdb.anchors.store import Anchors
from asifdb.engine.ivf import IvfParams
from tests.unit.engine.engine_data import clustered
from tests.unit.engine.engine_reference import relative_representation

K, P = 40, 8.0


def _anchors(version: int, ids: np.ndarray, image: np.ndarray, text: np.ndarray) -> Anchors:
    return Anchors(
        version,
        ids,
        engine.normalise(image),
        engine.normalise(text),
        np.ones(len(ids), dtype=bool),
        {int(i): n for n, i in enumerate(ids)},
    )


def _dense(rep: engine.SparseRep) -> np.ndarray:
    out = np.zeros((rep.indices.shape[0], rep.n_anchors))
    np.put_along_axis(out, rep.indices, rep.values, axis=1)
    return out


def _check(live: LiveModel, view: View, queries: np.ndarray) -> None:
    for modality, rows in (("image", view.image_anchors()), ("text", view.text_anchors())):
        got = live.representation(view, modality, queries[modality], K, P)
        want = relative_representation(queries[modality], rows, K, P)
        np.testing.assert_allclose(_dense(got), want, atol=1e-6)
        # One query takes the one-query scan (int8 under `auto`): the same definition.
        one = live.representation(view, modality, queries[modality][:1], K, P)
        np.testing.assert_allclose(_dense(one), want[:1], atol=1e-6)


SCANS = ["float32", "bfloat16", "int8", "auto"]


def test_auto_scans_one_query_in_int8_and_batches_in_bfloat16_where_the_cpu_has_it() -> None:
    one, batch = scan_dtypes("auto")
    assert one == torch.int8
    assert batch == (torch.bfloat16 if fast_bfloat16() else torch.float32)
    assert scan_dtypes("int8") == (torch.int8, torch.int8)


@pytest.mark.parametrize("scan", SCANS)
def test_views_of_every_version_match_the_dense_definition(scan: str) -> None:
    rng = np.random.default_rng(11)
    n = 900
    image, text = clustered(rng, n, 32), clustered(rng, n, 16)
    queries = {"image": clustered(rng, 6, 32), "text": clustered(rng, 6, 16)}
    ids = np.arange(n, dtype=np.int64) * 3 + 7
    live = LiveModel(scan)

    first = _anchors(1, ids[:600], image[:600], text[:600])
    v1 = View(first, first.usable_rows())
    _check(live, v1, queries)

    # Version 2: 150 pairs revoked, 300 appended (the index grows, it is not rebuilt).
    alive = first.alive.copy()
    alive[100:250] = False
    grown = _anchors(2, ids, image, text)
    grown = Anchors(
        2, grown.ids, grown.image, grown.text, np.r_[alive, np.ones(300, bool)], grown.position
    )
    index = live._indexes["image", live._scan]._index
    v2 = View(grown, grown.usable_rows())
    _check(live, v2, queries)
    assert live._indexes["image", live._scan]._index is index and index._n == n

    # A query still holding version 1 sees version 1, on the grown index.
    _check(live, v1, queries)
    # A what-if (version 2 less some pairs) searches the same rows.
    _check(live, v2.without(frozenset(int(i) for i in ids[600:700])), queries)

    # A reload (positions moved) rebuilds the index; the older view still answers correctly.
    order = rng.permutation(n)[:500]
    order.sort()
    reloaded = _anchors(3, ids[order], image[order], text[order])
    _check(live, View(reloaded, reloaded.usable_rows()), queries)
    _check(live, v2, queries)


@pytest.mark.parametrize("scan", SCANS)
def test_cached_caption_reps_share_the_anchors_and_equal_the_what_if_path(scan: str) -> None:
    rng = np.random.default_rng(12)
    n = 700
    image, text = clustered(rng, n, 24), clustered(rng, n, 16)
    captions = clustered(rng, 5, 16)
    ids = np.arange(n, dtype=np.int64) + 1
    live = LiveModel(scan)
    base = _anchors(1, ids[:500], image[:500], text[:500])
    versions = [View(base, base.usable_rows())]
    alive = np.r_[base.alive, np.ones(200, bool)]
    alive[50:120] = False
    grown = _anchors(2, ids, image, text)
    grown = Anchors(2, grown.ids, grown.image, grown.text, alive, grown.position)
    versions += [View(grown, grown.usable_rows()), versions[0]]
    key = tuple(f"c{i}" for i in range(len(captions)))
    first = live.caption_reps(versions[0], key, captions, K, P)
    assert live.caption_reps(versions[0], key, captions, K, P) is first  # kept per view
    [(_, reps)] = live._captions.values()
    assert np.shares_memory(reps._index._blocks[0].numpy(), base.text)  # no copy per label set
    for view in versions:
        cached = live.caption_reps(view, key, captions, K, P)
        fresh = live.representation(view, "text", captions, K, P)
        np.testing.assert_array_equal(cached.indices, fresh.indices)
        np.testing.assert_array_equal(cached.values, fresh.values)
        want = relative_representation(captions, view.text_anchors(), K, P)
        np.testing.assert_allclose(_dense(cached), want, atol=1e-6)


def _pairs_of(view: View, rep: engine.SparseRep) -> np.ndarray:
    return view.pair_ids[rep.indices]


def test_the_ivf_method_follows_revocations_additions_and_restores_without_a_build_each() -> None:
    """method "ivf": a revoked pair is never a neighbour, appended pairs are at the next query,
    k neighbours always come back, and past IVF_MAX_UNUSABLE revoked the lists are rebuilt
    over the usable pairs, after which a restored pair is found again."""
    rng = np.random.default_rng(13)
    n, d = 4000, 64
    image, text = clustered(rng, n, d), clustered(rng, n, 16)
    query = engine.normalise(clustered(rng, 1, d))
    near = engine.normalise(query + 0.01 * rng.standard_normal((6, d)).astype(np.float32))
    image = np.concatenate([image, near])
    text = np.concatenate([text, clustered(rng, 6, 16)])
    ids = np.arange(n + 6, dtype=np.int64) * 5 + 2
    policy = IvfPolicy(params=IvfParams(coding="flat", nprobe=16))
    live = LiveModel("float32", ivf=policy)

    first = _anchors(1, ids[:n], image[:n], text[:n])
    view = View(first, first.usable_rows())
    got = live.representation(view, "image", query, K, P, method="ivf")
    exact = live.representation(view, "image", query, K, P)
    assert len(np.intersect1d(got.indices, exact.indices)) >= 0.9 * K
    built = live._ivf._index

    # Version 2: the six pairs nearest the query appended; 10 % of the first revoked.
    alive = np.r_[first.alive, np.ones(6, bool)]
    alive[: n // 10] = False
    grown = _anchors(2, ids, image, text)
    grown = Anchors(2, grown.ids, grown.image, grown.text, alive, grown.position)
    v2 = View(grown, grown.usable_rows())
    got = live.representation(v2, "image", query, K, P, method="ivf")
    pairs = _pairs_of(v2, got)
    assert got.indices.shape == (1, K)
    assert set(ids[n:]) <= set(pairs[0].tolist())  # the additions, at once
    assert not np.isin(pairs, ids[: n // 10]).any()  # never a revoked pair
    assert live._ivf._index is built  # appended to the lists, no rebuild

    # Version 3: 40 % revoked, the six near pairs among them: past the threshold, rebuilt.
    alive3 = alive.copy()
    alive3[: 4 * n // 10] = False
    alive3[n:] = False
    v3 = View(grown, np.flatnonzero(alive3))
    pairs = _pairs_of(v3, live.representation(v3, "image", query, K, P, method="ivf"))
    assert pairs.shape == (1, K)
    assert not np.isin(pairs, grown.ids[~alive3]).any()
    assert live._ivf._index is not built
    # Version 4: the near pairs restored: found again, though the rebuild left them out.
    alive4 = alive3.copy()
    alive4[n:] = True
    v4 = View(grown, np.flatnonzero(alive4))
    pairs = _pairs_of(v4, live.representation(v4, "image", query, K, P, method="ivf"))
    assert set(ids[n:]) <= set(pairs[0].tolist())
    assert not np.isin(pairs, grown.ids[~alive4]).any()
