"""Top-k cosine neighbours among anchors: the `TopK` protocol and the exact, chunked `ExactTopK`.

relative_representation and LiveCaptionReps call it; the anchors module picks it or pgvector HNSW.
"""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np
import torch

from asifdb.engine.embeddings import ArrayLike, normalise, unit_row_chunks

STORAGE_DTYPES = (torch.float32, torch.bfloat16)
# Scan copies: bfloat16, or int8 with one scale per row (VNNI / AVX2 integer dot products).
SCAN_DTYPES = (*STORAGE_DTYPES, torch.int8)

# Columns per block in the scan filter: the k-th largest block maximum bounds the k-th largest
# value from below, and whole blocks under the bound are skipped without looking inside.
_BLOCK = 64
_MIN_BLOCK = 4
_QUERY_BATCH = 256
# Below this many similarities a threaded torch reduction loses to numpy: each torch call
# waits on the thread pool, milliseconds on a busy machine.
_THREADED = 1 << 20
_NO_KEY = np.iinfo(np.int64).max
# ExactTopK.scan_plan's cost model: bytes per scanned value; what an anchor let through the
# scan's bound costs against one streamed float32 row (measured: a reranked row about 1.9 us,
# gathered and summed in numpy, a streamed one 0.12 us in torch.mv, 20k x 1280 anchors, AMX
# Xeon); how often a copy found too costly is tried again.
_SCAN_BYTES = {torch.float32: 4, torch.bfloat16: 2, torch.int8: 1}
_GATHER_COST = 16.0
_RETRY_EVERY = 64
# The float32 rerank: rows per gather (1.3 MB at d = 1280: they stay in the core's L2), and
# the (queries x pooled anchors) above which it runs on torch's thread count.
_RERANK_TILE = 128
_RERANK_THREADED = 1 << 9


class TopK(Protocol):
    """Anything that finds, for each query, the k anchors most cosine-similar to it."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(n, d) float32 queries -> anchor keys (n, k') int64 and cosines (n, k') float32.

        Rows are sorted by similarity, descending. k' <= k; a row with fewer hits than k' is
        padded with key -1.
        """
        ...


class ExactTopK:
    """Exact top-k over anchors held in memory, scanned in chunks, editable in place.

    `anchors` (n, d), any float dtype, numpy or torch, is L2-normalised and stored as `dtype`:
    float32, or bfloat16 (half the memory; the anchors are rounded, so results move a little).
    `scan_dtype` bfloat16 with float32 anchors keeps a bfloat16 copy for the scan (AMX
    matmuls, half the bytes read) and reranks on float32: the float32 results exactly, for
    1.5x the memory. bfloat16 pays only on CPUs with AMX or AVX512-BF16: elsewhere (AVX2)
    torch's bfloat16 matmul is hundreds of times slower than float32's (see
    docs/benchmarks-engine.md), so keep the float32 default there. `scan_dtype` int8 keeps
    each anchor row as int8 times one float scale (a quarter of the bytes read, integer dot
    products) and reranks on float32: again exactly float32's results, for 1.25x the memory.
    Which copy a search scans is chosen per search (`scan_plan`): the scan copy, unless its
    bound let so many anchors through to the rerank last time (int8 on real embeddings, whose
    cosines pack in a narrow band) that the float32 rows cost less; same results either way.
    `ids` (n,) int64 are the keys `search` returns (default: row positions); ties in
    similarity go to the smaller key.

    The similarity of a query q (float32, unit) and a stored anchor a is the float32 sum of
    q_j * a_j in the fixed order of torch's row reduction; `search` returns exactly the k
    best by that value. The chunked scan runs a fast matmul whose error is bounded, keeps
    every anchor that can still reach the top k given that bound, and reranks those: results
    do not depend on chunk size, batch size or matmul kernel. bfloat16 storage changes the
    anchors themselves (each component rounded to 8 significant bits).

    Memory: n * d * (4, 2 or 6) bytes for the anchors, plus per search about
    256 * chunk_size * 4 bytes of similarities. Not safe for edits concurrent with searches.
    """

    def __init__(
        self,
        anchors: ArrayLike,
        *,
        ids: np.ndarray | None = None,
        dtype: torch.dtype = torch.float32,
        scan_dtype: torch.dtype | None = None,
        chunk_size: int = 65_536,
    ) -> None:
        self._start(dtype, scan_dtype or dtype, chunk_size)
        n = len(anchors)
        if n == 0:
            raise ValueError("anchors is empty: at least one row is needed")
        self.add(np.arange(n, dtype=np.int64) if ids is None else ids, anchors)

    def _start(self, dtype: torch.dtype, scan_dtype: torch.dtype, chunk_size: int) -> None:
        """An index holding nothing yet."""
        if dtype not in STORAGE_DTYPES or scan_dtype not in SCAN_DTYPES:
            raise ValueError(f"dtype must be in {STORAGE_DTYPES} and scan_dtype in {SCAN_DTYPES}")
        if dtype == torch.bfloat16 and scan_dtype != torch.bfloat16:
            raise ValueError("bfloat16 anchors are scanned in bfloat16")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
        self._dtype = dtype
        self._scan_dtype = scan_dtype
        self._chunk = chunk_size
        self._dim = 0  # set by the first rows stored
        self._blocks: list[torch.Tensor] = []
        # A second, bfloat16 copy only when the scan's dtype differs from the anchors'.
        self._scan_blocks: list[torch.Tensor] = [] if scan_dtype != dtype else self._blocks
        # int8 scans: each row's scale (blocks of (rows, 1) float32). Both kinds of copy: the
        # largest L2 distance between a stored row and its scanned image (the bound uses it).
        self._scales: list[torch.Tensor] = []
        self._quantisation_error = 0.0
        # What the last full scan of the scan copy let through beyond k, per anchor scanned
        # (None: not scanned yet), and full scans since: `_plan` reads both.
        self._excess: float | None = None
        self._since_tried = 0
        self._n = 0
        self._ids = np.empty(0, dtype=np.int64)
        self._usable = np.empty(0, dtype=bool)
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None
        self._revoked_cols: dict[int, torch.Tensor | None] = {}

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def scan_dtype(self) -> torch.dtype:
        return self._scan_dtype

    @property
    def n_anchors(self) -> int:
        """Usable anchors (stored minus revoked)."""
        return int(self._usable.sum())

    @property
    def nbytes(self) -> int:
        """Memory held by the stored anchors, ids and flags."""
        copies = [self._blocks, self._scales]
        copies += [self._scan_blocks] if self._scan_dtype != self._dtype else []
        blocks = sum(b.numel() * b.element_size() for c in copies for b in c)
        return blocks + self._ids.nbytes + self._usable.nbytes

    def usable_ids(self) -> np.ndarray:
        """Keys of the usable anchors, in storage order."""
        return self._ids[: self._n][self._usable[: self._n]]

    @classmethod
    def of_unit_rows(
        cls,
        rows: np.ndarray,
        *,
        ids: np.ndarray,
        scan_dtype: torch.dtype = torch.float32,
        chunk_size: int = 65_536,
    ) -> "ExactTopK":
        """A float32 index over `rows` (n, d), float32 C-contiguous with unit L2 rows, shared,
        not copied (the caller must not change them); rows are used as they are, so results
        are those over exactly these values. Later `add`s are stored as usual.
        """
        if rows.dtype != np.float32 or rows.ndim != 2 or not rows.flags.c_contiguous:
            raise ValueError("rows must be a C-contiguous (n, d) float32 matrix")
        if len(rows) == 0:
            raise ValueError("anchors is empty: at least one row is needed")
        for start in range(0, len(rows), chunk_size):
            norms = np.linalg.norm(rows[start : start + chunk_size], axis=1)
            if not np.all(np.abs(norms - 1) < 1e-5):  # also false for NaN
                raise ValueError("rows must be finite with unit L2 norm")
        index = cls.__new__(cls)
        index._start(torch.float32, scan_dtype, chunk_size)
        ids = index._new_ids(ids)
        if len(ids) != len(rows):
            raise ValueError(f"{len(ids)} ids for {len(rows)} anchor rows")
        index._blocks[:] = [
            torch.from_numpy(rows[start : start + chunk_size])
            for start in range(0, len(rows), chunk_size)
        ]
        if scan_dtype != torch.float32:
            for block in index._blocks:
                index._append_scan_copy(block, 0)
        index._dim = rows.shape[1]
        index._n = len(rows)
        index._ids = ids
        index._usable = np.ones(len(ids), dtype=bool)
        return index

    def search(
        self,
        queries: ArrayLike,
        k: int,
        *,
        usable: np.ndarray | None = None,
        scan: torch.dtype | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(n, d) queries -> keys (n, k') int64, similarities (n, k') float32; k' = min(k, usable).

        Rows sorted by similarity descending, ties by key ascending. Queries are L2-normalised.
        `usable` (stored rows,) bool, in storage order, replaces the index's own usable flags
        for this search only (a reader's snapshot; the index is not changed). `scan`: which
        copy to scan, `dtype` or `scan_dtype` (default: the one `scan_plan` picks); results
        are the same whichever it is.
        """
        q = self._queries(queries)
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        if scan is not None and scan not in (self._dtype, self._scan_dtype):
            raise ValueError(f"scan must be {self._dtype} or {self._scan_dtype}, not {scan}")
        if usable is None:
            positions, sims = self._top(q, min(k, self._require_usable()), forced=scan)
            return self._keys(positions), sims
        usable = np.asarray(usable, dtype=bool)
        if usable.shape != (self._n,):
            raise ValueError(f"usable has shape {usable.shape}, the index {self._n} rows")
        n_usable = int(usable.sum())
        if n_usable == 0:
            raise ValueError("no usable anchors: every anchor is revoked")
        positions, sims = self._top(q, min(k, n_usable), usable=usable, forced=scan)
        return self._keys(positions), sims

    def scan_plan(self) -> torch.dtype:
        """The copy the next full search scans: the scan copy (`scan_dtype`), unless its last
        full scan let so many anchors through its error bound to the float32 rerank that
        scanning the stored rows costs less (then every _RETRY_EVERY-th search tries the copy
        again, so a collection whose similarities spread out gets it back).

        Cost, in passes over the stored float32 rows: bytes read relative to float32, plus
        _GATHER_COST per anchor let through beyond k, as a fraction of the anchors scanned (a
        gathered float32 row costs about that many streamed ones: docs/benchmarks-engine.md).
        """
        copy = self._scan_dtype
        if copy == self._dtype or self._excess is None:
            return copy
        cost = _SCAN_BYTES[copy] / 4 + _GATHER_COST * self._excess
        if cost < 1 or self._since_tried >= _RETRY_EVERY:
            return copy
        return self._dtype

    def _plan(self) -> torch.dtype:
        chosen = self.scan_plan()
        if chosen != self._scan_dtype:
            self._since_tried += 1
        return chosen

    def add(self, ids: np.ndarray, anchors: ArrayLike) -> None:
        """Store new anchors (n, d) under new keys `ids` (n,); they are usable at once."""
        ids = self._new_ids(ids)
        if len(anchors) != len(ids):
            raise ValueError(f"{len(ids)} ids for {len(anchors)} anchor rows")
        if len(ids) == 0:
            return
        start = self._n
        try:
            for rows in unit_row_chunks(anchors, "anchors"):
                if self._dim and rows.shape[1] != self._dim:
                    raise ValueError(
                        f"anchors have {rows.shape[1]} dimensions, this index {self._dim}"
                    )
                self._dim = rows.shape[1]
                self._append(rows)
        except ValueError:
            self._truncate(start)
            raise
        self._ids = np.concatenate([self._ids[:start], ids])
        self._usable = np.concatenate([self._usable[:start], np.ones(len(ids), dtype=bool)])
        self._lookup = None

    def revoke(self, ids: np.ndarray) -> None:
        """Make the anchors `ids` unusable (kept in memory, so `restore` needs no embedding).

        Revoking an already revoked anchor does nothing; an unknown id is a ValueError.
        """
        self._set_usable(ids, False)

    def restore(self, ids: np.ndarray) -> None:
        """Make revoked anchors `ids` usable again; restoring a usable one does nothing."""
        self._set_usable(ids, True)

    # --- engine-internal: LiveCaptionReps builds on these -----------------------------------

    def _queries(self, queries: ArrayLike) -> torch.Tensor:
        q = torch.from_numpy(normalise(queries, "queries"))
        if q.shape[1] != self._dim:
            raise ValueError(
                f"queries have {q.shape[1]} dimensions but the anchors {self._dim}: "
                "they must come from the same encoder"
            )
        return q

    def _require_usable(self) -> int:
        n = self.n_anchors
        if n == 0:
            raise ValueError("no usable anchors: every anchor is revoked")
        return n

    def _positions(self, ids: np.ndarray) -> np.ndarray:
        """Storage positions of known keys `ids`; ValueError naming the first unknown one."""
        if self._lookup is None:
            order = np.argsort(self._ids[: self._n], kind="stable")
            self._lookup = (self._ids[: self._n][order], order)
        sorted_ids, order = self._lookup
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        at = np.searchsorted(sorted_ids, ids).clip(max=max(len(sorted_ids) - 1, 0))
        found = (sorted_ids[at] == ids) if len(sorted_ids) else np.zeros(len(ids), dtype=bool)
        if not found.all():
            raise ValueError(f"unknown anchor id {int(ids[~found][0])}")
        return order[at]

    def _keys(self, positions: np.ndarray) -> np.ndarray:
        keys = self._ids[positions.clip(min=0)]
        return np.where(positions >= 0, keys, -1)

    def _top(
        self,
        q: torch.Tensor,
        k: int,
        *,
        floor: np.ndarray | None = None,
        among: np.ndarray | None = None,
        usable: np.ndarray | None = None,
        forced: torch.dtype | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of unit float32 queries `q` (n, d): positions (n, k) and similarities.

        `among` (sorted storage positions) restricts the scan to those anchors; `usable` (a
        mask over storage) replaces the usable flags; `floor` (n,) drops, per row, anchors
        less similar than it; `forced` names the copy to scan (else `_plan` picks). Missing
        hits are position -1, -inf.
        """
        out_pos = np.empty((len(q), k), dtype=np.int64)
        out_sim = np.empty((len(q), k), dtype=np.float32)
        for start in range(0, len(q), _QUERY_BATCH):
            stop = start + _QUERY_BATCH
            qb = q[start:stop]
            low = (
                np.full(len(qb), -np.inf)
                if floor is None
                else np.asarray(floor[start:stop], dtype=np.float64)
            )
            scan = forced or (self._plan() if among is None else self._scan_dtype)
            pool = np.sort(self._scan(qb, k, low, among, usable, scan), axis=1)
            if among is None and scan != self._dtype:
                n_scanned = self._n if usable is None else int(usable.sum())
                passed = float((pool >= 0).sum(axis=1).mean())
                self._excess = max(0.0, passed - k) / max(n_scanned, 1)
                self._since_tried = 0
            fine = self._fine(qb, pool)
            fine = np.where(fine >= low[:, None], fine, -np.inf)
            pos = np.where(np.isfinite(fine), pool, -1)
            if pos.shape[1] == 0:  # nothing passed the floor: one column of "no hit"
                pos = np.full((len(qb), 1), -1)
                fine = np.full((len(qb), 1), -np.inf, dtype=np.float32)
            keys = np.where(pos >= 0, self._ids[pos.clip(min=0)], _NO_KEY)
            order = np.lexsort((keys, -fine), axis=1)[:, :k]
            if order.shape[1] < k:
                pad = np.zeros((len(order), k - order.shape[1]), dtype=order.dtype)
                order = np.concatenate([order, pad - 1], axis=1)
            taken_pos = np.take_along_axis(pos, order.clip(min=0), axis=1)
            taken_sim = np.take_along_axis(fine, order.clip(min=0), axis=1)
            out_pos[start:stop] = np.where(order >= 0, taken_pos, -1)
            out_sim[start:stop] = np.where(order >= 0, taken_sim, -np.inf)
        return out_pos, out_sim

    # --- the scan --------------------------------------------------------------------------

    def _bound(self, q: torch.Tensor, qs: torch.Tensor, scan: torch.dtype) -> "_ScanBound":
        """How far a `scan` similarity of unit queries `q` (run as `qs`) can be from exact."""
        u32 = 2.0**-24
        gamma = self._dim * u32 / (1 - self._dim * u32)  # float32 sum of d products
        # Both the scan and the rerank sum d float32 products: each is within gamma + u32
        # of the exact dot product (|q| = |a| = 1), so within twice that of each other.
        exact_matmul = torch.get_float32_matmul_precision() == "highest"
        if scan == torch.int8:
            # scan = s_q s_a (q8 . a8), with q = s_q q8 + e_q and a = s_a a8 + e_a, so
            # |q . a - scan| <= |e_q| + |e_a| + |e_q||e_a| (unit q, a) before rounding; the
            # int32 dot is exact, its conversion and two scalings round by 3 u32 relative.
            e_q = torch.linalg.vector_norm(
                q.double() - qs[0].double() * qs[1].double(), dim=1
            ).numpy()
            e_a = self._quantisation_error
            return _ScanBound(1.01 * (e_q + e_a + e_q * e_a + gamma + u32), 4 * u32)
        if scan == torch.float32 and exact_matmul:
            return _ScanBound(np.full(len(q), 2.02 * (gamma + u32)), 0.0)
        u16 = 2.0**-8
        if scan == torch.float32:
            # float32 matmuls allowed to round both operands to bfloat16 internally.
            rounding = np.full(len(q), 2 * u16)
        else:
            # q . a - q_b . a_b = q . (a - a_b) + (q - q_b) . a_b: the anchors' rounding when
            # they are stored in float32 but scanned in bfloat16 (e_a, the largest measured
            # over the stored rows), and the query's own, measured: |e_q| |a_b| <= |e_q| (1 + e_a).
            error = torch.linalg.vector_norm(qs.double() - q.double(), dim=1).numpy()
            e_a = self._quantisation_error if self._dtype == torch.float32 else 0.0
            rounding = error * (1 + max(e_a, u16)) + e_a
        return _ScanBound(1.01 * (rounding + 2 * (gamma + u32) * (1 + u16) ** 2), u16)

    def _scan(
        self,
        q: torch.Tensor,
        k: int,
        floor: np.ndarray,
        among: np.ndarray | None,
        usable: np.ndarray | None = None,
        scan: torch.dtype | None = None,
    ) -> np.ndarray:
        """Positions (b, P) (-1 padded) holding every anchor that can be in the exact top-k,
        scanning the copy of dtype `scan` (the scan copy or the stored rows; default the copy).

        Keeps anchors whose scan similarity could still beat the exact k-th best, given the
        scan's error bound. The k-th best is bounded from below by the k-th largest block
        maximum (those are k distinct anchors) and by the k-th best of the pool so far.
        Bookkeeping is numpy: many small torch ops each wait on the thread pool, which
        costs milliseconds apiece on a busy machine.
        """
        b = len(q)
        scan = scan or self._scan_dtype
        integer = scan == torch.int8
        qs = _quantise(q)[:2] if integer else q.to(scan)
        bound = self._bound(q, qs, scan)
        low = bound.lowest_scan(floor)
        tau = np.full(b, -np.inf)
        pool_c = np.empty((b, 0), dtype=np.float32)
        pool_p = np.empty((b, 0), dtype=np.int64)
        # One buffer for all chunks: fresh multi-MB tensors cost a page fault per 4 KiB.
        width = min(self._chunk, self._n)
        buffer = torch.empty(b * width, dtype=torch.float32 if integer else scan)
        dots = torch.empty(b * width, dtype=torch.int32) if integer else None
        for rows, scales, positions, revoked in self._chunks(among, usable, scan):
            sims = buffer[: b * len(rows)].view(b, len(rows))
            if dots is not None:
                products = dots[: b * len(rows)].view(b, len(rows))
                torch._int_mm(qs[0], rows.T, out=products)  # exact int32 dot products
                torch.mul(products, scales.T, out=sims)
                sims.mul_(qs[1])
            elif b == 1:  # matrix-vector: oneDNN's bfloat16 (1 x d) @ (d x n) path is slower
                torch.mv(rows, qs[0], out=sims[0])
            else:
                torch.matmul(qs, rows.T, out=sims)
            if revoked is not None:
                sims[:, revoked] = -torch.inf
            new_c, new_cols, tau = _chunk_candidates(sims, k, tau, bound, low)
            new_p = np.where(new_cols >= 0, positions[new_cols.clip(min=0)], -1)
            pool_c, pool_p, tau = _merge(
                np.concatenate([pool_c, new_c], 1),
                np.concatenate([pool_p, new_p], 1),
                k,
                tau,
                bound,
                low,
            )
        return pool_p

    def _chunks(
        self, among: np.ndarray | None, usable: np.ndarray | None, scan: torch.dtype
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None, np.ndarray, torch.Tensor | None]]:
        """(anchor rows, their int8 scales or None, their storage positions, revoked columns)
        for each chunk scanned, from the copy of dtype `scan`."""
        copy = self._scan_blocks if scan == self._scan_dtype else self._blocks
        with_scales = scan == torch.int8
        if among is None:
            for i, block in enumerate(copy):
                start = i * self._chunk
                if usable is None:
                    revoked = self._revoked(i)
                else:
                    cols = np.flatnonzero(~usable[start : start + len(block)])
                    revoked = torch.from_numpy(cols) if len(cols) else None
                scales = self._scales[i] if with_scales else None
                yield block, scales, np.arange(start, start + len(block)), revoked
            return
        for start in range(0, len(among), self._chunk):
            positions = among[start : start + self._chunk]
            scales = self._gather(positions, self._scales) if with_scales else None
            yield self._gather(positions, copy), scales, positions, None

    def _revoked(self, block: int) -> torch.Tensor | None:
        if block not in self._revoked_cols:
            start = block * self._chunk
            cols = np.flatnonzero(~self._usable[start : start + len(self._blocks[block])])
            self._revoked_cols[block] = torch.from_numpy(cols) if len(cols) else None
        return self._revoked_cols[block]

    def _fine(self, q: torch.Tensor, positions: np.ndarray) -> np.ndarray:
        """The similarity (see the class docs) of each query to its pooled anchors (b, P),
        positions sorted ascending per row; -inf where the position is -1.

        One (query, anchor) pair always gets the same value: float32 products summed along d
        by numpy's pairwise row sum, whose order depends on d only, not on how many rows,
        chunks, queries or threads share the call (a BLAS matmul gives no such promise).
        """
        b, width = positions.shape
        out = np.full((b, width), -np.inf, dtype=np.float32)
        blocks = [_raw(block) for block in self._blocks]
        q_np = q.numpy()
        firsts = (positions < 0).sum(axis=1)  # -1 pads sort first
        tiles = [
            (i, lo, min(lo + _RERANK_TILE, width))
            for i in range(b)
            for lo in range(int(firsts[i]), width, _RERANK_TILE)
        ]
        threads = min(max(1, torch.get_num_threads()), len(tiles))
        if threads <= 1 or b * width < _RERANK_THREADED:
            _fine_tiles(blocks, self._chunk, q_np, positions, out, tiles)
            return out
        # numpy releases the GIL in take, multiply and sum: the tiles split across threads.
        with ThreadPoolExecutor(threads) as pool:
            for done in [
                pool.submit(
                    _fine_tiles, blocks, self._chunk, q_np, positions, out, tiles[i::threads]
                )
                for i in range(threads)
            ]:
                done.result()
        return out

    def _gather(self, positions: np.ndarray, copy: list[torch.Tensor]) -> torch.Tensor:
        """Rows at storage `positions` (m,) of one stored copy (the scan's, the scales)."""
        blocks = [_raw(block) for block in copy]
        rows = np.empty((len(positions), blocks[0].shape[1]), dtype=blocks[0].dtype)
        _take(blocks, positions, self._chunk, rows)
        return torch.from_numpy(rows).view(copy[0].dtype)

    # --- storage ---------------------------------------------------------------------------

    def _append(self, rows: torch.Tensor) -> None:
        """Store unit float32 `rows` after the last stored row (in each copy's dtype)."""
        used = self._n % self._chunk
        _extend(self._blocks, rows.to(self._dtype), self._chunk, used)
        if self._scan_dtype != self._dtype:
            self._append_scan_copy(rows, used)
        for block in range(self._n // self._chunk, len(self._blocks)):
            self._revoked_cols.pop(block, None)
        self._n += len(rows)

    def _append_scan_copy(self, rows: torch.Tensor, used: int) -> None:
        """The scan's copy of unit float32 `rows`, after the `used` rows of its last block."""
        if self._scan_dtype != torch.int8:
            copy = rows.to(self._scan_dtype)
            _extend(self._scan_blocks, copy, self._chunk, used)
            # Each row's rounding, measured: about a third of the worst case |a| 2^-8.
            error = torch.linalg.vector_norm(rows.double() - copy.double(), dim=1)
            self._quantisation_error = max(self._quantisation_error, float(error.max()))
            return
        quantised, scales, error = _quantise(rows)
        _extend(self._scan_blocks, quantised, self._chunk, used)
        _extend(self._scales, scales, self._chunk, used)
        # Never lowered (not even when rows are dropped): a larger bound only scans more.
        self._quantisation_error = max(self._quantisation_error, float(error.max()))

    def _truncate(self, n: int) -> None:
        """Drop stored rows from position n on (undoes a failed `add`)."""
        keep = -(-n // self._chunk)
        copies = [self._blocks] + ([self._scan_blocks] if self._scan_dtype != self._dtype else [])
        copies += [self._scales] if self._scan_dtype == torch.int8 else []
        for blocks in copies:
            del blocks[keep:]
            if n % self._chunk:
                blocks[-1] = blocks[-1][: n % self._chunk].clone()
        self._revoked_cols.clear()
        self._n = n

    def _new_ids(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or len(ids) == 0):
            raise ValueError("ids must be a 1-d array of integers")
        ids = ids.astype(np.int64)
        if len(np.unique(ids)) != len(ids):
            raise ValueError("ids must be distinct")
        if self._n and np.isin(ids, self._ids[: self._n]).any():
            raise ValueError(f"anchor id {int(ids[np.isin(ids, self._ids[: self._n])][0])} exists")
        return ids

    def _set_usable(self, ids: np.ndarray, usable: bool) -> None:
        positions = self._positions(ids)
        self._usable[positions] = usable
        for block in np.unique(positions // self._chunk):
            self._revoked_cols.pop(int(block), None)


class _ScanBound:
    """Error bound of scan similarities: |scan - exact| <= delta + u * |value| per query.

    `delta` (b,) covers the query's rounding and the float32 sums, `u` the rounding of the
    output to the scan dtype (0 for float32). Derivation in docs/benchmarks-engine.md.
    """

    def __init__(self, delta: np.ndarray, u: float) -> None:
        self.delta = delta
        self.u = u

    def lowest_scan(self, exact: np.ndarray) -> np.ndarray:
        """Lowest scan similarity of an anchor whose exact similarity is at least `exact`."""
        finite = np.isfinite(exact)
        e = np.where(finite, exact, 0.0)
        return np.where(finite, e - self.delta - self.u * (np.abs(e) + self.delta), exact)

    def threshold(self, kth_scan: np.ndarray, low: np.ndarray) -> np.ndarray:
        """Lowest scan similarity that can still reach the top k, when k anchors scan at
        least `kth_scan`; never below -2, so revoked anchors (-inf) never pass."""
        finite = np.isfinite(kth_scan)
        s = np.where(finite, kth_scan, 0.0)
        exact_kth = np.where(finite, s - self.u * np.abs(s) / (1 - self.u) - self.delta, kth_scan)
        return np.maximum(self.lowest_scan(exact_kth), low).clip(min=-2.0)


def _quantise(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row, rows ~ scale * q: q (n, d) int8, scale (n, 1) float32, and
    each row's L2 error |row - scale * q| (n,) float64, computed as the scan will use them."""
    peak = rows.abs().amax(dim=1, keepdim=True)
    scales = torch.where(peak > 0, peak / 127, torch.ones_like(peak))
    quantised = torch.round(rows / scales).clamp_(-127, 127).to(torch.int8)
    error = torch.linalg.vector_norm(rows.double() - quantised.double() * scales.double(), dim=1)
    return quantised, scales, error


def _float32(x: np.ndarray) -> np.ndarray:
    """Scan similarities as float32 (bfloat16 arrives as its int16 bit patterns)."""
    if x.dtype == np.int16:
        return (x.astype(np.int32) << 16).view(np.float32)
    return x


def _kth(values: np.ndarray, k: int) -> np.ndarray:
    """k-th largest value of each row."""
    return -np.partition(-values, k - 1, axis=1)[:, k - 1]


def _chunk_candidates(
    sims: torch.Tensor, k: int, tau: np.ndarray, bound: _ScanBound, low: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns of `sims` (b, L) that may hold a top-k anchor: padded (b, m) values, columns."""
    b, length = sims.shape
    width = _BLOCK
    if not np.isfinite(tau).all():
        # The first chunk seen: blocks small enough that k of their maxima bound the k-th
        # best (a partition of the whole chunk, on one core, costs more than this pass).
        while width > _MIN_BLOCK and length // width < k:
            width //= 2
    n_blocks = length // width
    rest = n_blocks * width
    raw = (sims.view(torch.int16) if sims.dtype == torch.bfloat16 else sims).numpy()
    maxima = None
    if n_blocks and b * length >= _THREADED:
        # The one pass over the whole chunk: torch's vectorised, threaded reduction.
        maxima = sims[:, :rest].view(b, n_blocks, width).amax(2).to(torch.float32).numpy()
    elif n_blocks:
        maxima = _float32(raw[:, :rest]).reshape(b, n_blocks, width).max(axis=2)
    if maxima is not None and n_blocks >= k:
        tau = np.maximum(tau, _kth(maxima, k))
    elif length >= k and not np.isfinite(tau).all():
        # Too few blocks for their maxima to bound anything: the chunk's own k-th best.
        tau = np.maximum(tau, _kth(_float32(raw), k))
    theta = bound.threshold(tau, low)
    parts = []
    if maxima is not None:
        rows, block = np.nonzero(maxima >= theta[:, None])
        # A strided view of the whole blocks: reshaping a column slice would copy the chunk.
        row_stride, col_stride = raw.strides
        as_blocks = np.lib.stride_tricks.as_strided(
            raw, (b, n_blocks, width), (row_stride, width * col_stride, col_stride)
        )
        values = _float32(as_blocks[rows, block])
        hit, offset = np.nonzero(values >= theta[rows, None])
        parts.append(_padded(rows[hit], block[hit] * width + offset, values[hit, offset], b))
    if rest < length:
        tail = _float32(raw[:, rest:])
        rows, cols = np.nonzero(tail >= theta[:, None])
        parts.append(_padded(rows, cols + rest, tail[rows, cols], b))
    values = np.concatenate([p[0] for p in parts], 1)
    cols = np.concatenate([p[1] for p in parts], 1)
    return values, cols, tau


def _padded(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, b: int
) -> tuple[np.ndarray, np.ndarray]:
    """(row, column, value) triples, rows ascending -> padded (b, m) values and columns."""
    counts = np.bincount(rows, minlength=b)
    width = int(counts.max()) if len(rows) else 0
    starts = np.cumsum(counts) - counts
    flat = rows * width + np.arange(len(rows)) - starts[rows]
    out_v = np.full(b * width, -np.inf, dtype=np.float32)
    out_c = np.full(b * width, -1, dtype=np.int64)
    out_v[flat] = vals
    out_c[flat] = cols
    return out_v.reshape(b, width), out_c.reshape(b, width)


def _merge(
    values: np.ndarray,
    positions: np.ndarray,
    k: int,
    tau: np.ndarray,
    bound: _ScanBound,
    low: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raise the k-th-best bound from the pool, then drop what fell below it (padded)."""
    if values.shape[1] >= k:
        tau = np.maximum(tau, _kth(values, k))
    rows, cols = np.nonzero(values >= bound.threshold(tau, low)[:, None])
    vals, pos = _padded(rows, positions[rows, cols], values[rows, cols], len(values))
    return vals, pos, tau


def _fine_tiles(
    blocks: list[np.ndarray],
    chunk: int,
    q: np.ndarray,
    positions: np.ndarray,
    out: np.ndarray,
    tiles: list[tuple[int, int, int]],
) -> None:
    """`ExactTopK._fine` of the tiles (query row, first column, stop column), into `out`:
    at most _RERANK_TILE rows gathered at a time, into buffers that stay in the core's cache."""
    d = q.shape[1]
    starts = np.arange(1, len(blocks)) * chunk
    rows = np.empty((_RERANK_TILE, d), dtype=blocks[0].dtype)
    products = np.empty((_RERANK_TILE, d), dtype=np.float32)
    for i, lo, hi in tiles:
        pos = positions[i, lo:hi]
        m = hi - lo
        # Sorted positions: each block's rows land in one contiguous slice of `rows`.
        cuts = [0, *np.searchsorted(pos, starts).tolist(), m]
        for block, (a, z) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
            if z > a:
                local = pos[a:z] - block * chunk
                np.take(blocks[block], local, axis=0, out=rows[a:z], mode="clip")
        if rows.dtype == np.int16:  # bfloat16 bits: the top half of a float32
            np.left_shift(rows[:m], 16, out=products[:m].view(np.int32), dtype=np.int32)
            np.multiply(products[:m], q[i], out=products[:m])
        else:
            np.multiply(rows[:m], q[i], out=products[:m])
        np.sum(products[:m], axis=1, out=out[i, lo:hi])


def _raw(block: torch.Tensor) -> np.ndarray:
    """A block as numpy (bfloat16 bits as int16: numpy has no bfloat16)."""
    return (block.view(torch.int16) if block.dtype == torch.bfloat16 else block).numpy()


def _extend(blocks: list[torch.Tensor], rows: torch.Tensor, chunk: int, used: int) -> None:
    """Append `rows` to blocks of `chunk` rows whose last one holds `used` rows."""
    while len(rows):
        if used == 0:
            blocks.append(torch.empty((0, rows.shape[1]), dtype=rows.dtype))
        take = rows[: chunk - used]
        # Blocks are exactly as long as their rows, so a full block is one matmul operand.
        blocks[-1] = torch.cat([blocks[-1], take]) if used else take.clone()
        used = (used + len(take)) % chunk
        rows = rows[len(take) :]


def _take(blocks: list[np.ndarray], positions: np.ndarray, chunk: int, out: np.ndarray) -> None:
    """Rows at storage `positions` from consecutive blocks of `chunk` rows, into `out`."""
    if len(blocks) == 1:
        np.take(blocks[0], positions, axis=0, out=out, mode="clip")
        return
    block_of = positions // chunk
    for i in np.unique(block_of):
        at = np.flatnonzero(block_of == i)
        out[at] = np.take(blocks[int(i)], positions[at] - i * chunk, axis=0, mode="clip")
