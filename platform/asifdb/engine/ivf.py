"""Approximate top-k by FAISS inverted lists over the anchors, reranked exactly by `ExactTopK`.

The live model's `ivf` method (anchors/live.py) and benchmarks/engine/bench_ivf.py call it.
"""

import math
from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np

from asifdb.engine.embeddings import ArrayLike
from asifdb.engine.topk import ExactTopK

Coding = Literal["flat", "pq"]
# k-means on at most this many training rows per list (faiss warns under 39), ten iterations:
# the lists only need to be balanced and coherent, not optimal (build time at 1M anchors).
_TRAIN_PER_LIST = 64
_KMEANS_ITERATIONS = 10


@dataclass(frozen=True)
class IvfParams:
    """How the inverted lists are built and searched (figures: docs/benchmarks-engine.md).

    `coding`: what a list stores per anchor for the shortlist, "flat" (float32, d * 4 bytes)
    or "pq" (`pq_bytes` bytes). `n_lists` None: about sqrt(n). `nprobe`: lists probed per
    query at first. `shortlist`: candidates per wanted neighbour taken from the probed lists
    to the exact rerank.
    """

    coding: Coding = "pq"
    n_lists: int | None = None
    nprobe: int = 32
    shortlist: float = 4.0
    pq_bytes: int = 64
    seed: int = 0


class IvfTopK:
    """Top-k anchors by cosine: a shortlist from the probed inverted lists, reranked exactly.

    The shortlist is the `shortlist * k` anchors the lists' codes score best among the usable
    anchors of the `nprobe` lists nearest the query; `ExactTopK` reranks it on the float32 rows,
    so every returned similarity is exactly the exact path's (same rows, same rerank). Which
    anchors come back is approximate: a true neighbour outside the probed lists, or scored
    out of the shortlist by its code, is missed.

    Revoked anchors are skipped while the lists are scanned (a bitmap selector over storage
    positions), never filtered afterwards: a query whose probed lists hold fewer usable
    anchors than the shortlist probes twice as many lists, up to all of them, so it always
    gets min(k, usable) neighbours. `add` appends to the lists (no retraining); `needs_rebuild`
    says when the lists have drifted enough that a fresh build pays.

    Memory: the shared float32 rows (`rows`, not copied: a memory-mapped file works, only
    reranked rows are read), plus the lists: n * (pq_bytes or 4 d) + 8 n bytes of ids.
    """

    def __init__(self, rows: np.ndarray, *, ids: np.ndarray, params: IvfParams) -> None:
        """`rows` (n, d) float32 C-contiguous unit rows, kept by reference; `ids` (n,) int64
        the keys `search` returns."""
        self._exact = ExactTopK.of_unit_rows(rows, ids=ids)
        self._params = params
        n, d = rows.shape
        n_lists = params.n_lists or max(1, round(math.sqrt(n)))
        self._n_lists = max(1, min(n_lists, n // 39))
        quantiser = faiss.IndexFlatIP(d)
        if params.coding == "pq":
            if d % params.pq_bytes:
                raise ValueError(f"pq_bytes {params.pq_bytes} must divide the dimension {d}")
            # 8-bit codes need 256 * 39 training rows; fewer anchors get fewer bits.
            bits = max(1, min(8, int(math.log2(max(2, n // 39)))))
            index: faiss.IndexIVF = faiss.IndexIVFPQ(
                quantiser, d, self._n_lists, params.pq_bytes, bits, faiss.METRIC_INNER_PRODUCT
            )
        else:
            index = faiss.IndexIVFFlat(quantiser, d, self._n_lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = _KMEANS_ITERATIONS
        index.cp.seed = params.seed
        rng = np.random.default_rng(params.seed)
        sample = min(n, _TRAIN_PER_LIST * max(self._n_lists, 256 if params.coding == "pq" else 1))
        index.train(rows[np.sort(rng.choice(n, sample, replace=False))])
        self._index = index
        self._quantiser = quantiser  # faiss keeps a raw pointer: the quantiser must live on
        self._trained_imbalance = 0.0
        self._list_of = np.empty(0, dtype=np.int64)  # per storage position: its list
        self._append(rows, 0)
        self._trained_imbalance = self.imbalance()

    @property
    def n_lists(self) -> int:
        return self._n_lists

    @property
    def exact(self) -> ExactTopK:
        """The exact index over the same rows (the rerank; searchable on its own)."""
        return self._exact

    @property
    def nbytes(self) -> int:
        """Memory held by the lists (codes and ids) and the centroids, not the shared rows."""
        codes = self._index.code_size if self._params.coding == "pq" else 4 * self._exact.dim
        n = self._index.ntotal
        return n * (codes + 8) + self._n_lists * self._exact.dim * 4

    def add(self, ids: np.ndarray, anchors: ArrayLike) -> None:
        """Store new anchors (n, d) under new keys `ids`; usable at once, in their nearest list."""
        start = self._index.ntotal
        self._exact.add(ids, anchors)
        if self._exact._n > start:
            self._append(self._stored_rows(start), start)

    def revoke(self, ids: np.ndarray) -> None:
        """Make anchors unusable: skipped by every later scan (they stay in their lists)."""
        self._exact.revoke(ids)

    def restore(self, ids: np.ndarray) -> None:
        self._exact.restore(ids)

    def imbalance(self) -> float:
        """Largest list over the mean list size (1.0: perfectly even)."""
        sizes = np.bincount(self._list_of, minlength=self._n_lists)
        return float(sizes.max() / max(sizes.mean(), 1e-9))

    def needs_rebuild(
        self, usable: np.ndarray | None, *, max_imbalance: float, max_unusable: float
    ) -> bool:
        """Whether the lists have drifted: the imbalance grew past `max_imbalance` times the
        built one (anchors added far from the trained centroids), or more than `max_unusable`
        of the stored anchors are not usable (scans skip them, probes widen)."""
        usable = self._exact._usable[: self._exact._n] if usable is None else usable
        unusable = 1.0 - float(np.count_nonzero(usable)) / max(len(usable), 1)
        return unusable > max_unusable or self.imbalance() > max_imbalance * max(
            self._trained_imbalance, 1.0
        )

    def search(
        self,
        queries: ArrayLike,
        k: int,
        *,
        usable: np.ndarray | None = None,
        nprobe: int | None = None,
        shortlist: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(n, d) queries -> keys (n, k') int64, similarities (n, k') float32; k' = min(k, usable).

        As `ExactTopK.search` (rows by similarity descending, ties by key; `usable`, a mask
        over storage positions, replaces the index's flags for this search), but approximate
        in which anchors: every similarity returned is the exact path's value for that anchor.
        `nprobe` and `shortlist`: this search's, in place of the params' (more of either:
        closer to the exact neighbours, slower).
        """
        nprobe = self._params.nprobe if nprobe is None else nprobe
        shortlist = self._params.shortlist if shortlist is None else shortlist
        if nprobe < 1 or shortlist < 1:
            raise ValueError(f"nprobe {nprobe} and shortlist {shortlist} must be at least 1")
        exact = self._exact
        q = exact._queries(queries)
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        usable = exact._usable[: exact._n] if usable is None else np.asarray(usable, dtype=bool)
        if usable.shape != (exact._n,):
            raise ValueError(f"usable has shape {usable.shape}, the index {exact._n} rows")
        n_usable = int(np.count_nonzero(usable))
        if n_usable == 0:
            raise ValueError("no usable anchors: every anchor is revoked")
        k = min(k, n_usable)
        candidates = self._shortlist(
            q.numpy(), usable, min(n_usable, math.ceil(shortlist * k)), nprobe
        )
        keys = np.empty((len(q), k), dtype=np.int64)
        sims = np.empty((len(q), k), dtype=np.float32)
        for i, positions in enumerate(candidates):
            pos, sim = exact._top(q[i : i + 1], k, among=positions)
            keys[i], sims[i] = exact._keys(pos)[0], sim[0]
        return keys, sims

    def _shortlist(
        self, q: np.ndarray, usable: np.ndarray, size: int, nprobe: int
    ) -> list[np.ndarray]:
        """Per query, the sorted storage positions of up to `size` usable candidates from its
        nearest lists: as many lists as it takes to hold the usable anchors that `nprobe`
        lists hold on average (more where the nearest lists are mostly revoked), and at least
        `size` of them (up to every list)."""
        n_lists = self._n_lists
        counts = np.bincount(self._list_of[: len(usable)][usable], minlength=n_lists)
        wanted = max(size, nprobe * int(counts.sum()) / n_lists)
        _, order = self._quantiser.search(q, n_lists)
        held = np.cumsum(counts[order], axis=1)
        probes = np.clip((held < wanted).sum(axis=1) + 1, min(nprobe, n_lists), n_lists)
        bitmap = np.packbits(usable, bitorder="little")
        selector = faiss.IDSelectorBitmap(len(usable), faiss.swig_ptr(bitmap))
        out: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(q)
        for probed in np.unique(probes):
            rows = np.flatnonzero(probes == probed)
            params = faiss.SearchParametersIVF(sel=selector, nprobe=int(probed))
            _, found = self._index.search(np.ascontiguousarray(q[rows]), size, params=params)
            for row, hits in zip(rows, found, strict=True):
                out[row] = np.sort(hits[hits >= 0])
        return out

    def _append(self, rows: np.ndarray, start: int) -> None:
        """Add stored rows from position `start` on to their nearest lists, keyed by position."""
        lists = [self._list_of[:start]]
        for lo in range(0, len(rows), 65_536):
            chunk = np.ascontiguousarray(rows[lo : lo + 65_536], dtype=np.float32)
            positions = np.arange(start + lo, start + lo + len(chunk), dtype=np.int64)
            # The list each row goes to: the quantiser's nearest centroid, found once and
            # handed to faiss (`add_with_ids` would search for it again: half the build).
            _, nearest = self._quantiser.search(chunk, 1)
            nearest = np.ascontiguousarray(nearest[:, 0])
            self._index.add_core(
                len(chunk), faiss.swig_ptr(chunk), faiss.swig_ptr(positions),
                faiss.swig_ptr(nearest),
            )  # fmt: skip
            lists.append(nearest)
        self._list_of = np.concatenate(lists)

    def _stored_rows(self, start: int) -> np.ndarray:
        """The float32 rows ExactTopK stored from position `start` on (as it normalised them)."""
        positions = np.arange(start, self._exact._n, dtype=np.int64)
        return self._exact._gather(positions, self._exact._blocks).numpy()
