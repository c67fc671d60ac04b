"""ASIF relative representations: each query's top-k anchor similarities, ** p, normalised.

Services call `relative_representation`; the ANN path builds one with `from_neighbours`.
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from asifdb.engine.embeddings import ArrayLike, normalise
from asifdb.engine.topk import ExactTopK, TopK


@dataclass(frozen=True)
class SparseRep:
    """Relative representations of n queries, k' anchors each (k' = min(k, anchors)).

    indices: (n, k') int64 anchor keys (positions, or ids when the top-k path returns ids),
        sorted by similarity descending, ties to the smaller key; -1 pads a missing hit.
    values: (n, k') float32, similarity ** p with each row L2-normalised (0 at padding).
    similarities: (n, k') float32 raw cosines of the kept anchors (what explanations show).
    n_anchors: how many anchors the representation was computed over (None if unknown).
    """

    indices: np.ndarray
    values: np.ndarray
    similarities: np.ndarray
    n_anchors: int | None

    def __len__(self) -> int:
        return self.indices.shape[0]

    @cached_property
    def by_anchor(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Entries sorted by anchor key (stable): keys, their rows, values as float64 (m,).

        Computed once per representation; `sparse_scores` joins on it (captions are reused
        for every batch of images).
        """
        keys = self.indices.ravel()
        order = np.argsort(keys, kind="stable")
        rows = order // max(self.indices.shape[1], 1)
        return keys[order], rows, self.values.ravel()[order].astype(np.float64)

    def dense(self) -> np.ndarray:
        """(n, n_anchors) float32 matrix; only for positional indices and small n_anchors."""
        if self.n_anchors is None:
            raise ValueError("n_anchors is unknown: this representation has no dense form")
        out = np.zeros((len(self), self.n_anchors), dtype=np.float32)
        rows, cols = np.nonzero(self.indices >= 0)
        out[rows, self.indices[rows, cols]] = self.values[rows, cols]
        return out


def from_neighbours(
    indices: np.ndarray, similarities: np.ndarray, p: float, n_anchors: int | None
) -> SparseRep:
    """The representation from the top-k neighbours any `TopK` found (exact or ANN).

    indices (n, k') int64 (-1 = no hit), similarities (n, k') cosines, best first. Each kept
    similarity s becomes s ** p (as the paper's reference code does: an even p makes a
    negative similarity positive, an odd p keeps its sign; p need not be an integer when no
    kept similarity is negative), then the row is L2-normalised. A row whose powers are all
    zero stays zero: it scores 0 against everything. Computed in float64, stored as float32.
    """
    indices = np.asarray(indices, dtype=np.int64)
    sims = np.asarray(similarities, dtype=np.float32)
    if indices.shape != sims.shape or indices.ndim != 2:
        raise ValueError(f"indices {indices.shape} and similarities {sims.shape} must be (n, k)")
    if not p >= 1:
        raise ValueError(f"p must be at least 1 (the paper's p >= 1), not {p}")
    present = indices >= 0
    s = np.where(present, sims, 0.0).astype(np.float64)
    if float(p) != int(p) and (s < 0).any():
        raise ValueError(
            f"p = {p} is not an integer and a kept similarity is negative: its power is not "
            "a real number; use an integer p or more anchors"
        )
    weights = np.power(s, float(p))
    norms = np.sqrt(np.sum(weights * weights, axis=1, keepdims=True))
    values = np.divide(weights, norms, out=np.zeros_like(weights), where=norms > 0)
    return SparseRep(indices, values.astype(np.float32), sims, n_anchors)


def relative_representation(
    queries: ArrayLike,
    anchors: ArrayLike | TopK,
    k: int = 800,
    p: float = 8.0,
    *,
    chunk_size: int | None = None,
    dtype: torch.dtype | None = None,
) -> SparseRep:
    """ASIF relative representation of `queries` (n, d) against the anchors of their modality.

    `anchors` is an (N, d) matrix (any float dtype, numpy or torch; searched exactly with
    `ExactTopK(anchors, dtype=dtype or float32, chunk_size=chunk_size or 65536)`) or any
    `TopK` (an `ExactTopK` you keep, an ANN index). Queries and anchors are L2-normalised;
    the k most cosine-similar anchors are kept (all if fewer), see `from_neighbours`.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    if isinstance(anchors, np.ndarray | torch.Tensor):
        anchors = ExactTopK(anchors, dtype=dtype or torch.float32, chunk_size=chunk_size or 65_536)
    elif chunk_size is not None or dtype is not None:
        raise ValueError("chunk_size and dtype apply to an anchor matrix, not to a TopK index")
    if isinstance(anchors, ExactTopK):
        # ExactTopK normalises the queries itself; a second normalisation could move the
        # last bit and break equality with LiveCaptionReps.
        indices, sims = anchors.search(queries, k)
        n_anchors: int | None = anchors.n_anchors
    else:
        indices, sims = anchors.search(normalise(queries, "queries"), k)
        n_anchors = None
    return from_neighbours(indices, sims, p, n_anchors)


def top_k(
    queries: ArrayLike,
    anchors: ArrayLike,
    k: int,
    *,
    chunk_size: int = 65_536,
    dtype: torch.dtype = torch.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k: positions (n, k') int64 and cosines (n, k') float32 (see `ExactTopK`)."""
    return ExactTopK(anchors, dtype=dtype, chunk_size=chunk_size).search(queries, k)


def reindex(rep: SparseRep, anchor_ids: np.ndarray) -> SparseRep:
    """`rep` whose indices are anchor ids, re-keyed to positions in sorted `anchor_ids`."""
    anchor_ids = np.asarray(anchor_ids, dtype=np.int64)
    if np.any(np.diff(anchor_ids) <= 0):
        raise ValueError("anchor_ids must be strictly increasing")
    present = rep.indices >= 0
    positions = np.searchsorted(anchor_ids, rep.indices).clip(max=max(len(anchor_ids) - 1, 0))
    if len(anchor_ids) == 0 or np.any(present & (anchor_ids[positions] != rep.indices)):
        raise ValueError("the representation names anchors that are not in anchor_ids")
    indices = np.where(present, positions, -1).astype(np.int64)
    return SparseRep(indices, rep.values, rep.similarities, len(anchor_ids))
