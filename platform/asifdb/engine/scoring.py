"""ASIF scores: dot products of image and caption relative representations, sparse x sparse.

Services call `sparse_scores` on cached representations, or `scores` from raw embeddings.
"""

import numpy as np
import torch

from asifdb.engine.embeddings import ArrayLike
from asifdb.engine.representation import SparseRep, relative_representation

# Products materialised at a time while joining two representations on shared anchors.
_PRODUCTS_PER_STEP = 4_000_000


def sparse_scores(a: SparseRep, b: SparseRep) -> np.ndarray:
    """(len(a), len(b)) float32: row i of `a` dotted with row j of `b` over shared anchor keys.

    Both must key anchors the same way (both positions in one anchor set, or both pair ids).
    Products are summed in float64, in the order of a's row then b's row, so an explanation's
    contributions (see `explain`) add up to these scores.
    """
    if a.n_anchors is not None and b.n_anchors is not None and a.n_anchors != b.n_anchors:
        raise ValueError(
            f"the representations are over different anchor sets ({a.n_anchors} and "
            f"{b.n_anchors} anchors)"
        )
    n_a, n_b = len(a), len(b)
    out = np.zeros(n_a * n_b, dtype=np.float64)
    b_sorted, b_rows, b_vals = b.by_anchor
    lo_all = np.searchsorted(b_sorted, a.indices, side="left")
    hi_all = np.searchsorted(b_sorted, a.indices, side="right")
    counts = np.where(a.indices >= 0, hi_all - lo_all, 0)
    per_row = counts.sum(axis=1)
    start = 0
    while start < n_a:
        # As many rows of `a` as keep the joined products under the step budget (>= 1 row).
        budget = np.cumsum(per_row[start:]) <= _PRODUCTS_PER_STEP
        stop = start + max(1, int(budget.sum()))
        _join(a, slice(start, stop), lo_all, counts, b_rows, b_vals, n_b, out)
        start = stop
    return out.reshape(n_a, n_b).astype(np.float32)


def _join(
    a: SparseRep,
    rows: slice,
    lo_all: np.ndarray,
    counts_all: np.ndarray,
    b_rows: np.ndarray,
    b_vals: np.ndarray,
    n_b: int,
    out: np.ndarray,
) -> None:
    """Adds into `out` every product a[i, key] * b[j, key] for rows i of `a` in `rows`."""
    counts = counts_all[rows].ravel()
    total = int(counts.sum())
    if total == 0:
        return
    entry = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    b_at = lo_all[rows].ravel()[entry] + np.arange(total) - first[entry]
    a_row = rows.start + entry // a.indices.shape[1]
    a_vals = a.values[rows].ravel().astype(np.float64)[entry]
    flat = a_row * n_b + b_rows[b_at]
    out += np.bincount(flat, weights=a_vals * b_vals[b_at], minlength=len(out))


def scores(
    image_emb: ArrayLike,
    text_emb: ArrayLike,
    anchor_image_emb: ArrayLike,
    anchor_text_emb: ArrayLike,
    k: int = 800,
    p: float = 8.0,
    *,
    chunk_size: int | None = None,
    dtype: torch.dtype | None = None,
) -> np.ndarray:
    """ASIF similarity of every image with every text: (n_images, n_texts) float32.

    image_emb (n_images, d_img), text_emb (n_texts, d_txt); anchor i is pair i on both sides:
    anchor_image_emb (N, d_img), anchor_text_emb (N, d_txt). Images are represented against
    the anchor images, texts against the anchor captions, then compared by dot product.
    """
    if len(anchor_image_emb) != len(anchor_text_emb):
        raise ValueError(
            f"{len(anchor_image_emb)} anchor images but {len(anchor_text_emb)} anchor "
            "captions: anchors are pairs, row i of each is pair i"
        )
    image_rep = relative_representation(
        image_emb, anchor_image_emb, k, p, chunk_size=chunk_size, dtype=dtype
    )
    text_rep = relative_representation(
        text_emb, anchor_text_emb, k, p, chunk_size=chunk_size, dtype=dtype
    )
    return sparse_scores(image_rep, text_rep)
