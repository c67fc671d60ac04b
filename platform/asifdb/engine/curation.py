"""Curation math: leave-one-out fit of each pair's caption to its image, near-duplicate groups,
and each anchor's value on a labelled set. Arrays in, arrays out; services/curation.py calls it.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from asifdb.engine.classify import Aggregation, class_scores
from asifdb.engine.explain import explain
from asifdb.engine.representation import SparseRep, from_neighbours
from asifdb.engine.scoring import sparse_scores
from asifdb.engine.topk import TopK


def leave_one_out(
    index: TopK, queries: np.ndarray, own: np.ndarray, k: int, p: float, n_anchors: int | None
) -> SparseRep:
    """Relative representations of anchors' own embeddings without the anchor itself.

    queries (n, d) are the embeddings of the anchors whose keys in `index` are own (n,) int64;
    each row keeps its k best anchors other than itself (the pair must not vote for itself).
    """
    keys, sims = index.search(queries, k + 1)
    is_self = keys == np.asarray(own, dtype=np.int64)[:, None]
    # Drop the row's own key; a row that did not find itself drops its last (k+1-th) hit.
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), keys.shape[1] - 1)
    keep = np.ones(keys.shape, dtype=bool)
    keep[np.arange(len(keys)), drop] = False
    width = keys.shape[1] - 1
    keys = keys[keep].reshape(len(keys), width)[:, :k]
    sims = sims[keep].reshape(len(sims), width)[:, :k]
    return from_neighbours(keys, sims, p, n_anchors)


@dataclass(frozen=True)
class Alignment:
    """The collection's own alignment of its two modalities: regularised canonical correlation
    analysis of the pairs' image and caption embeddings (no labels, no training loop).

    image, caption: (d_image, r) and (d_caption, r) float64 projections, each column scaled by
    its canonical correlation; image_mean, caption_mean: what is subtracted first. Projected
    rows (`project`) are unit float32: images of one kind lie closer together in it than in the
    encoder's space (the caption side tells what "one kind" is), which is what a mismatch score
    needs. correlations: (r,) the canonical correlations, largest first.
    """

    image: np.ndarray
    caption: np.ndarray
    image_mean: np.ndarray
    caption_mean: np.ndarray
    correlations: np.ndarray

    def project(self, rows: np.ndarray, side: str, chunk: int = 65_536) -> np.ndarray:
        """(n, d) embeddings of `side` ("image" or "caption") -> (n, r) unit float32 rows,
        C-contiguous; converted `chunk` rows at a time (no float64 copy of all of them)."""
        matrix, mean = (
            (self.image, self.image_mean) if side == "image" else (self.caption, self.caption_mean)
        )
        out = np.empty((len(rows), matrix.shape[1]), dtype=np.float32)
        for start in range(0, len(rows), chunk):
            part = (np.asarray(rows[start : start + chunk], dtype=np.float64) - mean) @ matrix
            part /= np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-12)
            out[start : start + chunk] = part
        return out


def align(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]], rank: int = 256, regularisation: float = 0.1
) -> Alignment:
    """Fit an `Alignment` from (image (m, d_i), caption (m, d_c)) chunks of the same pairs.

    Streams: only the sums and Gram matrices are kept (d_i^2 + d_c^2 + d_i d_c float64), so
    memory does not grow with the number of pairs. `regularisation` is added to each side's
    covariance as that fraction of its mean variance (the fit needs far more pairs than
    dimensions; the caller decides when there are enough).
    """
    n = 0
    for image, caption in chunks:
        x, y = np.asarray(image, dtype=np.float64), np.asarray(caption, dtype=np.float64)
        if n == 0:
            sx, sy = np.zeros(x.shape[1]), np.zeros(y.shape[1])
            cxx, cyy = np.zeros((x.shape[1],) * 2), np.zeros((y.shape[1],) * 2)
            cxy = np.zeros((x.shape[1], y.shape[1]))
        n += len(x)
        sx += x.sum(0)
        sy += y.sum(0)
        cxx += x.T @ x
        cyy += y.T @ y
        cxy += x.T @ y
    if n < 2:
        raise ValueError(f"{n} pairs: an alignment needs at least 2")
    mx, my = sx / n, sy / n
    cxx = cxx / n - np.outer(mx, mx)
    cyy = cyy / n - np.outer(my, my)
    cxy = cxy / n - np.outer(mx, my)
    wx, wy = _inverse_sqrt(cxx, regularisation), _inverse_sqrt(cyy, regularisation)
    u, s, vt = np.linalg.svd(wx @ cxy @ wy, full_matrices=False)
    r = min(rank, len(s))
    return Alignment(
        (wx @ u[:, :r]) * s[:r], (wy @ vt[:r].T) * s[:r], mx, my, s[:r].astype(np.float64)
    )


def _inverse_sqrt(covariance: np.ndarray, regularisation: float) -> np.ndarray:
    ridge = regularisation * float(np.mean(np.diag(covariance)))
    values, vectors = np.linalg.eigh(covariance + ridge * np.eye(len(covariance)))
    return (vectors * np.maximum(values, 1e-12) ** -0.5) @ vectors.T


@dataclass(frozen=True)
class Fit:
    """How well each pair's caption fits its image among the other pairs of its batch.

    score: (n,) float32 ASIF score of the pair's image with its own caption (leave-one-out).
    rank: (n,) int64, 1 + how many other captions of the batch score higher with the image.
    margin: (n,) float32, own score minus the best other caption's score (< 0: not the best).
    fit: (n,) float32, the order of the mismatch list (lowest first): the z-score of the own
        score among the caption's scores with every image of the batch, so a caption that
        scores high with every image is not trusted. (The image side's z-score was measured
        too and lowers the AUC: docs/results-curation.md.)
    """

    score: np.ndarray
    rank: np.ndarray
    margin: np.ndarray
    fit: np.ndarray


def fit(image_rep: SparseRep, caption_rep: SparseRep) -> Fit:
    """Fit of n pairs compared with each other: row i of both representations is pair i.

    Pass leave-one-out representations (`leave_one_out`), n >= 3 pairs. Memory is n x n.
    """
    if len(image_rep) != len(caption_rep):
        raise ValueError(f"{len(image_rep)} images but {len(caption_rep)} captions")
    n = len(image_rep)
    if n < 3:
        raise ValueError(f"{n} pairs: at least 3 are needed to compare a caption with others")
    s = sparse_scores(image_rep, caption_rep).astype(np.float64)
    own = np.diag(s).copy()
    others = s.copy()
    np.fill_diagonal(others, np.nan)
    rank = 1 + np.sum(others > own[:, None], axis=1)
    margin = own - np.nanmax(others, axis=1)

    z = (own - np.nanmean(others, axis=0)) / np.maximum(np.nanstd(others, axis=0), 1e-9)
    return Fit(
        own.astype(np.float32),
        rank.astype(np.int64),
        margin.astype(np.float32),
        z.astype(np.float32),
    )


def duplicate_edges(
    index: TopK, queries: np.ndarray, own: np.ndarray, threshold: float, neighbours: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of anchors whose cosine is at least `threshold`: (a, b, cosine), a < b, each once.

    queries (n, d) are the embeddings of anchors `own` (n,) in `index`; each looks at its
    `neighbours` nearest others, so a group larger than neighbours + 1 is still joined through
    its members' own edges.
    """
    keys, sims = index.search(queries, neighbours + 1)
    own = np.asarray(own, dtype=np.int64)[:, None]
    hit = (keys >= 0) & (keys != own) & (sims >= threshold)
    a = np.broadcast_to(own, keys.shape)[hit]
    b = keys[hit]
    cos = sims[hit]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    order = np.lexsort((-cos, hi, lo))
    lo, hi, cos = lo[order], hi[order], cos[order]
    first = np.ones(len(lo), dtype=bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    return lo[first], hi[first], cos[first]


def groups(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of n nodes joined by edges (a, b): (n,) int64, each node's smallest
    member (a node without edges is its own group)."""
    label = np.arange(n, dtype=np.int64)
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    while True:
        low = np.minimum(label[a], label[b])
        before = label.copy()
        np.minimum.at(label, a, low)
        np.minimum.at(label, b, low)
        label = label[label]  # pointer jumping: halves the path to the root each pass
        if np.array_equal(label, before):
            return label


def keepers(group: np.ndarray, *preferences: np.ndarray) -> np.ndarray:
    """(n,) bool: per group, the member preferred by `preferences` (n,) each, highest first,
    compared in the order given (later ones break ties); last ties: the smallest index."""
    keys = [np.arange(len(group))]
    keys += [-np.asarray(pref, dtype=np.float64) for pref in reversed(preferences)]
    order = np.lexsort((*keys, group))
    first = np.ones(len(order), dtype=bool)
    first[1:] = group[order][1:] != group[order][:-1]
    keep = np.zeros(len(group), dtype=bool)
    keep[order[first]] = True
    return keep


@dataclass(frozen=True)
class Values:
    """Each anchor's value on a labelled set, and the predictions it came from.

    value: (n_anchors,) float64, the sum of its contributions to the predicted class's score
        over correctly classified images minus the sum over misclassified ones.
    predicted: (n_images,) int64 class index. correct: (n_images,) bool.
    """

    value: np.ndarray
    predicted: np.ndarray
    correct: np.ndarray


def predict(
    image_rep: SparseRep,
    caption_rep: SparseRep,
    n_classes: int,
    n_templates: int,
    aggregation: Aggregation = "max",
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class (n,) int64 and caption scores (n, n_classes * n_templates) float32."""
    caption_scores = sparse_scores(image_rep, caption_rep)
    if aggregation == "max":
        labels = np.argmax(caption_scores, axis=1) // n_templates
    else:
        labels = np.argmax(class_scores(caption_scores, n_classes, n_templates, "mean"), axis=1)
    return labels.astype(np.int64), caption_scores


def values(
    image_rep: SparseRep,
    caption_rep: SparseRep,
    true: np.ndarray,
    n_classes: int,
    n_templates: int,
    n_anchors: int,
    aggregation: Aggregation = "max",
) -> Values:
    """Anchor values on labelled images: positional anchor keys 0..n_anchors-1 on both sides.

    true (n_images,) int64 class indices; captions class-major (n_classes x n_templates).
    """
    predicted, caption_scores = predict(image_rep, caption_rep, n_classes, n_templates, aggregation)
    true = np.asarray(true, dtype=np.int64)
    correct = predicted == true
    value = np.zeros(n_anchors, dtype=np.float64)
    for i, label in enumerate(predicted):
        rows = np.arange(label * n_templates, (label + 1) * n_templates)
        if aggregation == "max":
            rows = rows[[int(np.argmax(caption_scores[i, rows]))]]
        sign = 1.0 if correct[i] else -1.0
        for c in explain(image_rep, i, caption_rep, rows.tolist()):
            value[c.anchor] += sign * c.contribution
    return Values(value, predicted, correct)
