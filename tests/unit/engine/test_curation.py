"""engine/curation.py against plain dense definitions: leave-one-out, fit, duplicate groups,
keepers, anchor values and the modalities' alignment (and the service's sampled fit of it)."""

import numpy as np
import pytest

from asifdb import engine
from asifdb.engine import curation
from asifdb.services.curation import (
    ALIGN_PAIRS_PER_DIMENSION,
    ALIGN_SAMPLE,
    fit_alignment,
    fit_batches,
    fit_spaces,
)


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _dense_loo(emb: np.ndarray, k: int, p: float) -> np.ndarray:
    """Row i: similarities to every anchor but i, top k kept, ** p, L2-normalised."""
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    out = np.zeros_like(sims)
    for i, row in enumerate(sims):
        top = np.argsort(-row)[:k]
        out[i, top] = row[top] ** p
        out[i] /= np.linalg.norm(out[i])
    return out


def test_leave_one_out_never_keeps_the_pair_itself_and_matches_the_dense_definition() -> None:
    rng = np.random.default_rng(0)
    emb = _unit(rng, 40, 8)
    index = engine.ExactTopK(emb)
    own = np.arange(40)
    rep = curation.leave_one_out(index, emb, own, k=5, p=2.0, n_anchors=40)
    assert not (rep.indices == own[:, None]).any()
    np.testing.assert_allclose(rep.dense(), _dense_loo(emb, 5, 2.0), atol=1e-5)


def test_fit_ranks_a_swapped_caption_last() -> None:
    rng = np.random.default_rng(1)
    # 6 concepts, 10 pairs each: an image and its caption share their concept's direction.
    centres_img, centres_txt = _unit(rng, 6, 16), _unit(rng, 6, 12)
    concept = np.repeat(np.arange(6), 10)
    image = centres_img[concept] + 0.3 * _unit(rng, 60, 16)
    caption = centres_txt[concept] + 0.3 * _unit(rng, 60, 12)
    caption[[3, 25]] = caption[[25, 3]]  # pairs 3 (concept 0) and 25 (concept 2) swap captions
    own = np.arange(60)
    image_rep = curation.leave_one_out(engine.ExactTopK(image), image, own, 8, 4.0, 60)
    caption_rep = curation.leave_one_out(engine.ExactTopK(caption), caption, own, 8, 4.0, 60)
    fit = curation.fit(image_rep, caption_rep)

    dense = (
        _dense_loo(image / np.linalg.norm(image, axis=1, keepdims=True), 8, 4.0)
        @ _dense_loo(caption / np.linalg.norm(caption, axis=1, keepdims=True), 8, 4.0).T
    )
    np.testing.assert_allclose(fit.score, np.diag(dense), atol=1e-5)
    assert set(np.argsort(fit.fit)[:2]) == {3, 25}
    assert (fit.margin[[3, 25]] < 0).all() and (fit.rank[[3, 25]] > 1).all()
    with pytest.raises(ValueError, match="at least 3"):
        curation.fit(_rows(image_rep, 2), _rows(caption_rep, 2))


def _rows(rep: engine.SparseRep, n: int) -> engine.SparseRep:
    return engine.SparseRep(rep.indices[:n], rep.values[:n], rep.similarities[:n], rep.n_anchors)


def test_duplicate_groups_join_chains_and_pick_the_preferred_keeper() -> None:
    rng = np.random.default_rng(2)
    emb = _unit(rng, 30, 64)
    emb[10] = emb[3] + 0.05 * _unit(rng, 1, 64)[0]  # 3 ~ 10 ~ 20: one group through 10
    emb[20] = emb[10] + 0.05 * _unit(rng, 1, 64)[0]
    emb[7] = emb[5] + 0.05 * _unit(rng, 1, 64)[0]
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    own = np.arange(30)
    a, b, cos = curation.duplicate_edges(engine.ExactTopK(emb), emb, own, 0.99, neighbours=3)
    assert (a < b).all() and len(set(zip(a, b, strict=True))) == len(a)
    group = curation.groups(30, a, b)
    assert group[3] == group[10] == group[20] == 3 and group[5] == group[7] == 5
    assert len(np.unique(group)) == 30 - 3
    members = np.array([3, 5, 7, 10, 20])
    area = np.array([1.0, 4.0, 4.0, 9.0, 9.0])
    fit = np.array([0.0, 1.0, 2.0, 0.5, 0.7])
    keep = curation.keepers(group[members], area, fit)
    assert members[keep].tolist() == [7, 20]  # largest, then best fit


def test_values_credit_correct_predictions_and_debit_wrong_ones() -> None:
    # Two classes, two anchors each; anchor 3's caption is "cat" but its image is a dog.
    image_anchors = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.8, 0.2]], dtype=np.float32)
    text_anchors = np.array([[1, 0], [1, 0.1], [0, 1], [0, 1]], dtype=np.float32)
    images = np.array([[1, 0.05], [0.85, 0.15]], dtype=np.float32)  # two dogs
    captions = np.array([[1, 0], [0, 1]], dtype=np.float32)  # "dog", "cat"
    image_rep = engine.relative_representation(images, image_anchors, k=4, p=1)
    caption_rep = engine.relative_representation(captions, text_anchors, k=4, p=1)
    values = curation.values(image_rep, caption_rep, np.array([0, 0]), 2, 1, 4)
    scores = engine.sparse_scores(image_rep, caption_rep)
    expected = np.zeros(4)
    for i in range(2):
        sign = 1 if values.correct[i] else -1
        c = values.predicted[i]
        expected += sign * image_rep.dense()[i] * caption_rep.dense()[c]
        assert values.predicted[i] == np.argmax(scores[i])
    np.testing.assert_allclose(values.value, expected, atol=1e-6)


def _dense_cca(x: np.ndarray, y: np.ndarray, regularisation: float) -> np.ndarray:
    """Canonical correlations of x and y from the textbook definition (whole matrices)."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    cxx, cyy, cxy = xc.T @ xc / len(x), yc.T @ yc / len(y), xc.T @ yc / len(x)
    cxx += regularisation * np.trace(cxx) / len(cxx) * np.eye(len(cxx))
    cyy += regularisation * np.trace(cyy) / len(cyy) * np.eye(len(cyy))
    m = np.linalg.solve(cxx, cxy) @ np.linalg.solve(cyy, cxy.T)
    return np.sqrt(np.clip(np.sort(np.linalg.eigvals(m).real)[::-1], 0, None))


def _pairs_sharing_a_concept(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """Images and captions of 8 concepts, each seeing its concept through its own random map,
    buried under stronger noise of its own in most dimensions (as encoders' spaces are)."""
    concept = rng.integers(0, 8, n)
    latent = rng.normal(size=(8, 6))[concept]
    image = latent @ rng.normal(size=(6, 48)) + 2.0 * rng.normal(size=(n, 48))
    caption = latent @ rng.normal(size=(6, 24)) + 2.0 * rng.normal(size=(n, 24))
    return concept, engine.normalise(image), engine.normalise(caption)


def test_alignment_streams_to_the_dense_canonical_correlations() -> None:
    _, image, caption = _pairs_sharing_a_concept(np.random.default_rng(3), 3000)
    whole = curation.align([(image, caption)], rank=10)
    streamed = curation.align(
        ((image[s : s + 700], caption[s : s + 700]) for s in range(0, 3000, 700)), rank=10
    )
    np.testing.assert_allclose(streamed.correlations, whole.correlations, rtol=1e-9)
    np.testing.assert_allclose(whole.correlations, _dense_cca(image, caption, 0.1)[:10], rtol=1e-6)
    for side, rows in (("image", image), ("caption", caption)):
        out = streamed.project(rows, side, chunk=256)
        assert out.shape == (3000, 10) and out.dtype == np.float32 and out.flags.c_contiguous
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, atol=1e-6)
        np.testing.assert_allclose(out, whole.project(rows, side), atol=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        curation.align([(image[:1], caption[:1])])


def test_swapped_captions_stand_out_more_in_the_alignment_than_in_the_encoders_spaces() -> None:
    rng = np.random.default_rng(4)
    concept, image, caption = _pairs_sharing_a_concept(rng, 2000)
    chosen = rng.choice(2000, 100, replace=False)
    a, b = chosen[:50], chosen[50:]
    caption[a], caption[b] = caption[b], caption[a].copy()
    # A swap within one concept leaves a fitting caption: only the others are mismatches.
    swapped = np.zeros(2000, dtype=bool)
    swapped[chosen] = concept[chosen] != concept[np.r_[b, a]]

    def found(image_rows: np.ndarray, caption_rows: np.ndarray) -> int:
        own = np.arange(2000)
        fits = np.empty(2000)
        for part in np.array_split(own, 4):
            image_rep = curation.leave_one_out(
                engine.ExactTopK(image_rows), image_rows[part], part, 50, 8.0, 2000
            )
            caption_rep = curation.leave_one_out(
                engine.ExactTopK(caption_rows), caption_rows[part], part, 50, 8.0, 2000
            )
            fits[part] = curation.fit(image_rep, caption_rep).fit
        return int(swapped[np.argsort(fits)[: swapped.sum()]].sum())

    alignment = curation.align([(image, caption)], rank=6)
    raw = found(image, caption)
    aligned = found(alignment.project(image, "image"), alignment.project(caption, "caption"))
    assert aligned > raw + 5, (raw, aligned, int(swapped.sum()))


def test_a_large_collection_is_aligned_on_a_sample_that_agrees_with_all_of_it() -> None:
    _, image, caption = _pairs_sharing_a_concept(np.random.default_rng(5), ALIGN_SAMPLE + 50_000)
    sampled = fit_alignment(image, caption, seed=0)
    whole = curation.align([(image, caption)], rank=len(sampled.correlations))
    assert not np.allclose(sampled.correlations, whole.correlations, rtol=1e-9, atol=0)
    np.testing.assert_allclose(sampled.correlations[:6], whole.correlations[:6], atol=0.01)


def test_fit_spaces_align_only_from_enough_pairs_a_dimension() -> None:
    least = ALIGN_PAIRS_PER_DIMENSION * (48 + 24)
    _, image, caption = _pairs_sharing_a_concept(np.random.default_rng(6), least)
    few = fit_spaces(image[:-1], caption[:-1], seed=0)
    np.testing.assert_array_equal(few[0], image[:-1])
    np.testing.assert_array_equal(few[1], caption[:-1])
    projected = fit_spaces(image, caption, seed=0)
    # Rank is capped by the smaller side: 24 directions, unit rows, in both modalities.
    for rows in projected:
        assert rows.shape == (least, 24) and rows.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-5)


def test_fit_batches_fill_a_short_batch_with_other_pairs_and_score_it_whole() -> None:
    rng = np.random.default_rng(7)
    _, image, caption = _pairs_sharing_a_concept(rng, 40)
    indexes = engine.ExactTopK(image), engine.ExactTopK(caption)
    targets = np.array([3, 17, 29, 30, 38])
    batches = list(fit_batches(*indexes, image, caption, targets, k=6, p=4.0, batch=16, seed=0))
    assert len(batches) == 1
    part, members, fit = batches[0]
    assert sorted(part) == sorted(targets) and list(members[: len(part)]) == list(part)
    assert len(members) == len(set(members.tolist())) == 16
    expected = curation.fit(
        curation.leave_one_out(indexes[0], image[members], members, 6, 4.0, 40),
        curation.leave_one_out(indexes[1], caption[members], members, 6, 4.0, 40),
    )
    np.testing.assert_array_equal(fit.fit, expected.fit)
    # Every target is scored once when they fill several batches.
    parts = [
        p
        for p, _, _ in fit_batches(
            *indexes, image, caption, np.arange(40), k=6, p=4.0, batch=16, seed=0
        )
    ]
    assert sorted(np.concatenate(parts).tolist()) == list(range(40))
