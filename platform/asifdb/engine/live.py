"""Caption relative representations kept exact while anchor pairs are added, revoked, restored.

The anchors module holds one per label set; it equals a from-scratch computation at all times.
"""

from collections.abc import Callable

import numpy as np
import torch

from asifdb.engine.embeddings import ArrayLike
from asifdb.engine.representation import SparseRep, from_neighbours
from asifdb.engine.topk import ExactTopK


class LiveCaptionReps:
    """Relative representations of fixed captions over a changing set of anchors, by pair id.

    Each caption keeps its exact top-(k + margin) usable anchors (sorted by similarity, ties
    to the smaller id). Revoking drops anchors from those candidates; adding or restoring
    merges in the new anchors that beat a row's last candidate; a row left with fewer than k
    candidates while more anchors are usable is recomputed alone. So `representation()`
    equals `relative_representation(captions, ExactTopK(usable anchors, ids=usable ids))`
    bit for bit, at the cost of a full scan only for rows the margin could not absorb.

    caption_emb (n, d) and anchor_emb (N, d): any float dtype; anchor_ids (N,) int64 distinct.
    Or `index`: an `ExactTopK` whose usable anchors are the pairs (it is then owned by this
    object and edited by it), e.g. one sharing the anchors' memory (`ExactTopK.of_unit_rows`).
    """

    def __init__(
        self,
        caption_emb: ArrayLike,
        anchor_ids: np.ndarray | None = None,
        anchor_emb: ArrayLike | None = None,
        *,
        k: int = 800,
        p: float = 8.0,
        margin: int | None = None,
        dtype: torch.dtype = torch.float32,
        chunk_size: int = 65_536,
        index: ExactTopK | None = None,
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        self.k, self.p = k, p
        self.width = k + (max(32, k // 4) if margin is None else margin)
        if index is None:
            if anchor_ids is None or anchor_emb is None:
                raise ValueError("pass anchor_ids and anchor_emb, or an index")
            index = ExactTopK(anchor_emb, ids=anchor_ids, dtype=dtype, chunk_size=chunk_size)
        elif anchor_ids is not None or anchor_emb is not None:
            raise ValueError("pass anchor_ids and anchor_emb, or an index, not both")
        self._index = index
        self._captions = self._index._queries(caption_emb)
        n = len(self._captions)
        self._ids = np.full((n, self.width), -1, dtype=np.int64)
        self._sims = np.full((n, self.width), -np.inf, dtype=np.float32)
        self._count = np.zeros(n, dtype=np.int64)
        self._complete = np.zeros(n, dtype=bool)
        self._rep: SparseRep | None = None
        self.rows_recomputed = 0
        self._recompute(np.arange(n))

    @property
    def n_anchors(self) -> int:
        """Usable anchors."""
        return self._index.n_anchors

    def usable_ids(self) -> np.ndarray:
        return self._index.usable_ids()

    def representation(self) -> SparseRep:
        """(n_captions, min(k, usable)) representations whose indices are pair ids."""
        if self._rep is None:
            m = min(self.k, self._index._require_usable())
            self._rep = from_neighbours(self._ids[:, :m], self._sims[:, :m], self.p, self.n_anchors)
        return self._rep

    def add(self, ids: np.ndarray, anchor_emb: ArrayLike) -> None:
        """New pairs `ids` with caption embeddings `anchor_emb` (n, d), usable at once."""
        self._index.add(ids, anchor_emb)
        self._admit(self._index._positions(ids))

    def revoke(self, ids: np.ndarray) -> None:
        """Pairs `ids` leave the usable set (revoking a revoked pair does nothing)."""
        self._index.revoke(ids)
        self._drop(np.asarray(ids, dtype=np.int64))
        self._fill_short_rows()

    def restore(self, ids: np.ndarray) -> None:
        """Revoked pairs `ids` are usable again (restoring a usable pair does nothing)."""
        positions = self._index._positions(ids)
        newly = positions[~self._index._usable[positions]]
        self._index.restore(ids)
        self._admit(newly)

    def update_to(
        self, anchor_ids: np.ndarray, embeddings_of: Callable[[np.ndarray], ArrayLike]
    ) -> None:
        """Move to the usable set `anchor_ids`: pairs not in it are revoked, known ones in it
        restored, unknown ones added with rows from `embeddings_of(ids)` (n, d)."""
        target = np.unique(np.asarray(anchor_ids, dtype=np.int64))
        usable = self._index.usable_ids()
        stored = self._index._ids[: self._index._n]
        gone = np.setdiff1d(usable, target, assume_unique=True)
        new = np.setdiff1d(target, stored, assume_unique=True)
        back = np.setdiff1d(np.intersect1d(target, stored), usable, assume_unique=True)
        if len(gone):
            self._index.revoke(gone)
            self._drop(gone)
        if len(new):
            self._index.add(new, embeddings_of(new))
        if len(back):
            self._index.restore(back)
        if len(new) or len(back):
            self._admit(self._index._positions(np.concatenate([new, back])))
        self._fill_short_rows()

    def _recompute(self, rows: np.ndarray) -> None:
        """Rows from a full scan of the usable anchors: their exact top-width."""
        n_usable = self._index._require_usable()
        width = min(self.width, n_usable)
        positions, sims = self._index._top(self._captions[rows], width)
        self._ids[rows] = -1
        self._sims[rows] = -np.inf
        self._ids[rows, :width] = self._index._keys(positions)
        self._sims[rows, :width] = sims
        self._count[rows] = width
        self._complete[rows] = n_usable <= self.width
        self.rows_recomputed += len(rows)
        self._rep = None

    def _drop(self, ids: np.ndarray) -> None:
        gone = np.isin(self._ids, ids)
        if not gone.any():
            return
        # Stable compaction keeps the survivors' order, still the exact ranking.
        order = np.argsort(gone, axis=1, kind="stable")
        self._ids = np.take_along_axis(np.where(gone, -1, self._ids), order, axis=1)
        self._sims = np.take_along_axis(np.where(gone, -np.inf, self._sims), order, axis=1)
        self._count -= gone.sum(axis=1)
        self._rep = None

    def _fill_short_rows(self) -> None:
        n_usable = self._index.n_anchors
        if n_usable == 0:
            return
        short = np.flatnonzero(~self._complete & (self._count < min(self.k, n_usable)))
        if len(short):
            self._recompute(short)

    def _admit(self, positions: np.ndarray) -> None:
        """Merge anchors that just became usable (storage `positions`) into every row."""
        if len(positions) == 0:
            return
        positions = np.sort(positions)
        rows = np.arange(len(self._captions))
        last = (self._count - 1).clip(min=0)
        # A complete row takes every new anchor; another only those beating its last
        # candidate (the anchors it does not hold all rank below that one).
        floor = np.where(self._complete, -np.inf, self._sims[rows, last])
        new_pos, new_sims = self._index._top(
            self._captions, self.width, floor=floor, among=positions
        )
        new_ids = self._index._keys(new_pos)
        last_id = np.where(self._complete, np.iinfo(np.int64).max, self._ids[rows, last])
        tied = (new_sims == floor[:, None]) & (new_ids < last_id[:, None])
        beats = (new_sims > floor[:, None]) | tied
        new_ids = np.where(beats & (new_pos >= 0), new_ids, -1)
        new_sims = np.where(new_ids >= 0, new_sims, -np.inf).astype(np.float32)
        ids = np.concatenate([self._ids, new_ids], axis=1)
        sims = np.concatenate([self._sims, new_sims], axis=1)
        keys = np.where(ids >= 0, ids, np.iinfo(np.int64).max)
        order = np.lexsort((keys, -sims), axis=1)[:, : self.width]
        total = self._count + (new_ids >= 0).sum(axis=1)
        self._ids = np.take_along_axis(ids, order, axis=1)
        self._sims = np.take_along_axis(sims, order, axis=1)
        self._complete &= total <= self.width
        self._count = np.minimum(total, self.width)
        self._rep = None
