"""The oracle: ASIF written densely from the paper's definition, float64, no chunking.

Full similarity matrix, a stable sort (ties to the lower anchor index), zero all but the top k,
raise to p, L2-normalise the row, dot the two sides.
"""

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def similarities(queries: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    return unit(queries) @ unit(anchors).T


def top_k(queries: np.ndarray, anchors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, similarities) of the k most similar anchors, sorted, ties to lower index."""
    sims = similarities(queries, anchors)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


def relative_representation(
    queries: np.ndarray, anchors: np.ndarray, k: int, p: float
) -> np.ndarray:
    """(n, N) dense float64 representation."""
    sims = similarities(queries, anchors)
    order = np.argsort(-sims, axis=1, kind="stable")
    kept = np.zeros_like(sims)
    rows = np.arange(len(sims))[:, None]
    kept[rows, order[:, :k]] = sims[rows, order[:, :k]] ** p
    return kept / np.linalg.norm(kept, axis=1, keepdims=True)


def scores(
    image: np.ndarray,
    text: np.ndarray,
    anchor_image: np.ndarray,
    anchor_text: np.ndarray,
    k: int,
    p: float,
) -> np.ndarray:
    return (
        relative_representation(image, anchor_image, k, p)
        @ relative_representation(text, anchor_text, k, p).T
    )


def boundary_gap(queries: np.ndarray, anchors: np.ndarray, k: int) -> float:
    """Smallest gap between the k-th and (k+1)-th similarity over rows: where float32 and
    float64 may disagree on the top-k set if it is ~1e-7."""
    sims = np.sort(similarities(queries, anchors), axis=1)[:, ::-1]
    if sims.shape[1] <= k:
        return np.inf
    return float(np.min(sims[:, k - 1] - sims[:, k]))
