"""Top-k cosine neighbours among anchors: the `TopK` protocol and the exact, chunked `ExactTopK`.

relative_representation and LiveCaptionReps call it; the anchors module picks it or pgvector HNSW.
"""

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch

from asifdb.engine.embeddings import ArrayLike, normalise, unit_row_chunks

STORAGE_DTYPES = (torch.float32, torch.bfloat16)

# Columns per block in the scan filter: the k-th largest block maximum bounds the k-th largest
# value from below, and whole blocks under the bound are skipped without looking inside.
_BLOCK = 64
_QUERY_BATCH = 256
# float64 working set of one rerank step (gathered anchor rows).
_RERANK_BYTES = 32 << 20
_NO_KEY = np.iinfo(np.int64).max


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

    `anchors` (n, d), any float dtype, numpy or torch, is L2-normalised and stored as `dtype`
    (float32, or bfloat16 at half the memory, scanned with AMX where the CPU has it). `ids`
    (n,) int64 are the keys `search` returns (default: row positions); ties in similarity
    go to the smaller key.

    The similarity of a query q and a stored anchor a is fl32(q . a) with q the float32 unit
    query and the dot product accumulated in float64: `search` returns exactly the k best by
    that value. The chunked scan uses a fast matmul with a proven error bound, keeps every
    anchor within twice that bound of the k-th best, and reranks those in float64; so results
    do not depend on chunk size, batch size or dtype-specific kernels. bfloat16 storage
    changes the anchors themselves (each component rounded to 8 significant bits).

    Memory: n * d * (4 or 2) bytes for the anchors, plus per search about
    256 * chunk_size * 4 bytes of similarities. Not safe for edits concurrent with searches.
    """

    def __init__(
        self,
        anchors: ArrayLike,
        *,
        ids: np.ndarray | None = None,
        dtype: torch.dtype = torch.float32,
        chunk_size: int = 65_536,
    ) -> None:
        if dtype not in STORAGE_DTYPES:
            raise ValueError(f"dtype must be one of {STORAGE_DTYPES}, not {dtype}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
        self._dtype = dtype
        self._chunk = chunk_size
        self._dim = 0  # set by the first rows stored
        self._blocks: list[torch.Tensor] = []
        self._n = 0
        self._ids = np.empty(0, dtype=np.int64)
        self._usable = np.empty(0, dtype=bool)
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None
        self._revoked_cols: dict[int, torch.Tensor | None] = {}
        n = len(anchors)
        if n == 0:
            raise ValueError("anchors is empty: at least one row is needed")
        self.add(np.arange(n, dtype=np.int64) if ids is None else ids, anchors)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def n_anchors(self) -> int:
        """Usable anchors (stored minus revoked)."""
        return int(self._usable.sum())

    @property
    def nbytes(self) -> int:
        """Memory held by the stored anchors, ids and flags."""
        blocks = sum(b.numel() * b.element_size() for b in self._blocks)
        return blocks + self._ids.nbytes + self._usable.nbytes

    def usable_ids(self) -> np.ndarray:
        """Keys of the usable anchors, in storage order."""
        return self._ids[: self._n][self._usable[: self._n]]

    def search(self, queries: ArrayLike, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(n, d) queries -> keys (n, k') int64, similarities (n, k') float32; k' = min(k, usable).

        Rows sorted by similarity descending, ties by key ascending. Queries are L2-normalised.
        """
        q = self._queries(queries)
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        positions, sims = self._top(q, min(k, self._require_usable()))
        return self._keys(positions), sims

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
                self._append(rows.to(self._dtype))
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
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of unit float32 queries `q` (n, d): positions (n, k) and similarities.

        `among` (sorted storage positions) restricts the scan to those anchors; `floor` (n,)
        drops, per row, anchors less similar than it. Missing hits are position -1, -inf.
        """
        out_pos = np.empty((len(q), k), dtype=np.int64)
        out_sim = np.empty((len(q), k), dtype=np.float32)
        for start in range(0, len(q), _QUERY_BATCH):
            stop = start + _QUERY_BATCH
            qb = q[start:stop]
            low = (
                torch.full((len(qb),), -torch.inf)
                if floor is None
                else torch.from_numpy(np.asarray(floor[start:stop], dtype=np.float32))
            )
            pool = self._scan(qb, k, low, among)
            fine = self._fine(qb, pool, k, low)
            fine = np.where(fine >= low.numpy()[:, None], fine, -np.inf)
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

    def _bound(self, q: torch.Tensor, qs: torch.Tensor) -> "_ScanBound":
        """How far the scan's similarity of unit queries `q` (run as `qs`) can be from exact."""
        u32 = 2.0**-24
        gamma = self._dim * u32 / (1 - self._dim * u32)  # float32 sum of d products
        if self._dtype == torch.float32 and torch.get_float32_matmul_precision() == "highest":
            return _ScanBound(torch.full((len(q),), 1.01 * gamma + 3 * u32), 0.0)
        u16 = 2.0**-8
        if self._dtype == torch.float32:
            # float32 matmuls allowed to round both operands to bfloat16 internally.
            rounding = torch.full((len(q),), 2 * u16)
        else:
            # The query's own rounding to bfloat16, measured: |(bf16(q) - q) . a| <= |e| |a|.
            rounding = torch.linalg.vector_norm(qs.double() - q.double(), dim=1).float()
            rounding = rounding * (1 + u16)
        delta = 1.01 * (rounding + gamma * (1 + u16) ** 2) + 3 * u32
        return _ScanBound(delta, u16)

    def _scan(
        self, q: torch.Tensor, k: int, floor: torch.Tensor, among: np.ndarray | None
    ) -> np.ndarray:
        """Positions (b, P) (-1 padded) holding every anchor that can be in the exact top-k.

        Keeps anchors whose scan similarity could still beat the exact k-th best, given the
        scan's error bound. The k-th best is bounded from below by the k-th largest block
        maximum (those are k distinct anchors) and by the k-th best of the pool so far.
        """
        b = len(q)
        qs = q.to(self._dtype)
        bound = self._bound(q, qs)
        low = bound.lowest_scan(floor)
        tau = torch.full((b,), -torch.inf)
        pool_c = torch.empty((b, 0))
        pool_p = torch.empty((b, 0), dtype=torch.int64)
        # One buffer for all chunks: fresh multi-MB tensors cost a page fault per 4 KiB.
        buffer = torch.empty(b * min(self._chunk, self._n), dtype=self._dtype)
        for rows, positions, revoked in self._chunks(among):
            sims = buffer[: b * len(rows)].view(b, len(rows))
            torch.matmul(qs, rows.T, out=sims)
            if revoked is not None:
                sims[:, revoked] = -torch.inf
            new_c, new_p, tau = _chunk_candidates(sims, k, tau, bound, low)
            new_p = torch.where(new_p >= 0, positions[new_p.clamp(min=0)], -1)
            pool_c, pool_p, tau = _merge(
                torch.cat([pool_c, new_c], 1), torch.cat([pool_p, new_p], 1), k, tau, bound, low
            )
        return pool_p.numpy()

    def _chunks(
        self, among: np.ndarray | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """(anchor rows, their storage positions, revoked columns) for each chunk scanned."""
        if among is None:
            for i, block in enumerate(self._blocks):
                start = i * self._chunk
                yield block, torch.arange(start, start + len(block)), self._revoked(i)
            return
        for start in range(0, len(among), self._chunk):
            positions = torch.from_numpy(among[start : start + self._chunk])
            yield self._gather(positions.numpy()), positions, None

    def _revoked(self, block: int) -> torch.Tensor | None:
        if block not in self._revoked_cols:
            start = block * self._chunk
            cols = np.flatnonzero(~self._usable[start : start + len(self._blocks[block])])
            self._revoked_cols[block] = torch.from_numpy(cols) if len(cols) else None
        return self._revoked_cols[block]

    def _fine(
        self, q: torch.Tensor, positions: np.ndarray, k: int, floor: torch.Tensor
    ) -> np.ndarray:
        """Exact similarities fl32(q . a), summed in float64, of the pooled anchors that can
        be in the top k (-inf for the others and for position -1).

        float64 makes a value independent of how BLAS orders the sum (two orders differ by
        ~1e-16, which changes the float32 rounding about once in 10**8 values). To spend it
        only where needed, a float32 pass first drops the pool's tail (error <= d * 2**-24).
        """
        b, width = positions.shape
        out = np.full((b, width), -np.inf, dtype=np.float32)
        if width == 0:
            return out
        u32 = 2.0**-24
        slack = 1.02 * self._dim * u32 / (1 - self._dim * u32) + 2 * u32
        step = max(1, _RERANK_BYTES // (width * self._dim * 4))
        for start in range(0, b, step):
            pos = torch.from_numpy(positions[start : start + step])
            qb = q[start : start + step]
            rows = self._gather(pos.clamp(min=0).reshape(-1).numpy()).to(torch.float32)
            rows = rows.view(len(pos), width, self._dim)
            rough = torch.bmm(rows, qb[:, :, None])[..., 0].masked_fill(pos < 0, -torch.inf)
            cut = floor[start : start + step] - slack
            if width >= k:
                kth = torch.topk(rough, k, dim=1, sorted=False).values.amin(1)
                cut = torch.maximum(cut, kth - 2 * slack)
            keep = (rough >= cut[:, None]).numpy()
            rows_np, q_np = rows.numpy(), qb.numpy()
            for i in range(len(pos)):
                cols = np.flatnonzero(keep[i])
                # einsum widens to float64 in small buffers: no float64 copy of the rows.
                exact = np.einsum("jd,d->j", rows_np[i, cols], q_np[i], dtype=np.float64)
                out[start + i, cols] = exact
        return out

    def _gather(self, positions: np.ndarray) -> torch.Tensor:
        """Stored rows at `positions` (m,), in the storage dtype."""
        rows = _take([self._raw(i) for i in range(len(self._blocks))], positions, self._chunk)
        return torch.from_numpy(rows).view(self._dtype)

    def _raw(self, block: int) -> np.ndarray:
        """A block as numpy (bfloat16 bits as int16: numpy has no bfloat16)."""
        tensor = self._blocks[block]
        return (tensor.view(torch.int16) if self._dtype == torch.bfloat16 else tensor).numpy()

    # --- storage ---------------------------------------------------------------------------

    def _append(self, rows: torch.Tensor) -> None:
        while len(rows):
            used = self._n % self._chunk
            if used == 0:
                self._blocks.append(torch.empty((0, self._dim), dtype=self._dtype))
            block = self._blocks[-1]
            take = rows[: self._chunk - used]
            # Blocks are exactly as long as their rows, so a full block is one matmul operand.
            self._blocks[-1] = torch.cat([block, take]) if len(block) else take.clone()
            self._revoked_cols.pop(len(self._blocks) - 1, None)
            self._n += len(take)
            rows = rows[len(take) :]

    def _truncate(self, n: int) -> None:
        """Drop stored rows from position n on (undoes a failed `add`)."""
        keep = -(-n // self._chunk)
        self._blocks = self._blocks[:keep]
        if n % self._chunk:
            self._blocks[-1] = self._blocks[-1][: n % self._chunk].clone()
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

    `delta` covers the query's rounding and float32 accumulation, `u` the rounding of the
    output to the scan dtype (0 for float32). Derivation in docs/benchmarks-engine.md.
    """

    def __init__(self, delta: torch.Tensor, u: float) -> None:
        self.delta = delta
        self.u = u

    def lowest_scan(self, exact: torch.Tensor) -> torch.Tensor:
        """Lowest scan similarity of an anchor whose exact similarity is at least `exact`."""
        slack = self.delta + self.u * (exact.abs() + self.delta)
        return torch.where(exact.isfinite(), exact - slack, exact)

    def threshold(self, kth_scan: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        """Lowest scan similarity that can still reach the top k, when k anchors scan at
        least `kth_scan`; never below -2, so revoked anchors (-inf) never pass."""
        slack = self.u * kth_scan.abs() / (1 - self.u) + self.delta
        exact_kth = torch.where(kth_scan.isfinite(), kth_scan - slack, kth_scan)
        return torch.maximum(self.lowest_scan(exact_kth), low).clamp(min=-2.0)


def _chunk_candidates(
    sims: torch.Tensor, k: int, tau: torch.Tensor, bound: _ScanBound, low: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Columns of `sims` (b, L) that may hold a top-k anchor: padded (b, m) values, columns."""
    b, length = sims.shape
    n_blocks = length // _BLOCK
    rest = n_blocks * _BLOCK
    parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    if n_blocks:
        blocks = sims[:, :rest].view(b, n_blocks, _BLOCK)
        maxima = blocks.amax(2).to(torch.float32)
        if n_blocks >= k:
            tau = torch.maximum(tau, torch.topk(maxima, k, dim=1, sorted=False).values.amin(1))
        theta = bound.threshold(tau, low)
        rows, block = torch.nonzero(maxima >= theta[:, None], as_tuple=True)
        values = blocks[rows, block].to(torch.float32)
        hit, offset = torch.nonzero(values >= theta[rows, None], as_tuple=True)
        parts.append((rows[hit], block[hit] * _BLOCK + offset, values[hit, offset]))
    if rest < length:
        theta = bound.threshold(tau, low)
        tail = sims[:, rest:].to(torch.float32)
        rows, cols = torch.nonzero(tail >= theta[:, None], as_tuple=True)
        parts.append((rows, cols + rest, tail[rows, cols]))
    values, cols = _padded(parts, b)
    return values, cols, tau


def _padded(
    parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], b: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column, value) triples, rows ascending within each part -> padded (b, m)."""
    rows, cols, vals = (torch.cat([p[i] for p in parts]) for i in range(3))
    if len(parts) > 1:
        order = torch.argsort(rows, stable=True)
        rows, cols, vals = rows[order], cols[order], vals[order]
    counts = torch.bincount(rows, minlength=b)
    width = int(counts.max()) if len(rows) else 0
    starts = torch.cumsum(counts, 0) - counts
    # One flat index: 1-d index_put is several times faster than 2-d advanced indexing.
    flat = rows * width + torch.arange(len(rows)) - starts[rows]
    out_v = torch.full((b * width,), -torch.inf)
    out_c = torch.full((b * width,), -1, dtype=torch.int64)
    out_v[flat] = vals
    out_c[flat] = cols
    return out_v.view(b, width), out_c.view(b, width)


def _merge(
    values: torch.Tensor,
    positions: torch.Tensor,
    k: int,
    tau: torch.Tensor,
    bound: _ScanBound,
    low: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raise the k-th-best bound from the pool, then drop what fell below it (padded)."""
    if values.shape[1] >= k:
        tau = torch.maximum(tau, torch.topk(values, k, dim=1, sorted=False).values.amin(1))
    keep = values >= bound.threshold(tau, low)[:, None]
    rows, cols = torch.nonzero(keep, as_tuple=True)
    vals, pos = _padded([(rows, positions[rows, cols], values[rows, cols])], len(values))
    return vals, pos, tau


def _take(blocks: list[np.ndarray], positions: np.ndarray, chunk: int) -> np.ndarray:
    """Rows at storage `positions` from consecutive blocks of `chunk` rows."""
    if len(blocks) == 1:
        return np.take(blocks[0], positions, axis=0)
    out = np.empty((len(positions), blocks[0].shape[1]), dtype=blocks[0].dtype)
    block_of = positions // chunk
    for i in np.unique(block_of):
        at = np.flatnonzero(block_of == i)
        out[at] = np.take(blocks[int(i)], positions[at] - i * chunk, axis=0)
    return out
