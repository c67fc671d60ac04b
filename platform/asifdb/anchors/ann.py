"""Approximate top-k over the usable pairs through pgvector's HNSW indexes.

The database-side `asifdb.engine.TopK` beside the engine's `ExactTopK`; services pick one.
"""

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from asifdb.anchors.ann_index import literal
from asifdb.errors import InvalidInput

Modality = Literal["image", "text"]
IterativeScan = Literal["off", "relaxed_order", "strict_order"]

# pgvector caps hnsw.ef_search here; a top-k for k above it needs an iterative scan.
_MAX_EF_SEARCH = 1000
# Candidates per wanted neighbour: at k = 800, ef_search 1000 found 97 % of the exact top-k
# against 96 % for 800, for ~1 ms more (docs/benchmarks-ann.md).
_EF_PER_K = 1.25

# The model's encoder of a modality and its embeddings' width.
_ENCODER = """
SELECT e.name, e.dim FROM model_state m JOIN encoders e ON e.name = m.{modality}_encoder
WHERE m.id = 1
"""

# Each query vector is a slice of one flat float8[] parameter, so n queries are one statement
# and one round trip. The encoder is a constant and the vectors are cast to its width, as in
# the partial HNSW index (`ann_index`), so the planner can scan it in distance order.
# `usable_pairs` is the one definition of a usable pair (invariant 2).
_SQL = """
WITH q AS (
    SELECT i, CAST((CAST(:flat AS float8[]))[(i - 1) * {dim} + 1 : i * {dim}]
                   AS halfvec({dim})) AS v
    FROM generate_series(1, :n) AS i
)
SELECT q.i, h.id, h.distance
FROM q CROSS JOIN LATERAL (
    SELECT e.pair_id AS id, CAST(e.embedding AS halfvec({dim})) <=> q.v AS distance
    FROM pair_embeddings AS e
    WHERE e.encoder = {encoder} AND EXISTS (SELECT FROM usable_pairs u WHERE u.id = e.pair_id)
    ORDER BY distance
    LIMIT :rows
) AS h
"""

_SET_LOCAL = text(
    "SELECT set_config(name, value, true) "
    "FROM unnest(CAST(:names AS text[]), CAST(:values AS text[])) AS s(name, value)"
)


@dataclass(frozen=True)
class HnswTopK:
    """Top-k usable pairs by cosine similarity to each query, from the HNSW index of a modality.

    Bound to the caller's session (and so to its transaction and snapshot), like the exact
    top-k is bound to its anchor matrix: `HnswTopK(session, "image").search(queries, k)`.

    `ef_search` None sizes the candidate list to k: 1.25 k, within pgvector's [40, 1000].
    `iterative_scan` keeps the index scan going past pairs that the usable filter drops
    (revoked licence, deleted, not ready), so about k rows still come back; "off" returns
    at most ef_search candidates, fewer once filtered. `max_scan_tuples` bounds that scan.
    `overfetch` reads that many times k rows from the scan and keeps the k most similar: the
    scan goes on past ef_search, which is how recall climbs beyond what ef_search 1000 gives.
    """

    session: Session | Connection
    modality: Modality
    ef_search: int | None = None
    iterative_scan: IterativeScan = "relaxed_order"
    max_scan_tuples: int = 20_000
    overfetch: float = 1.0

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Pair ids (n, k') int64 and cosine similarities (n, k') float32, best first.

        `queries` is (n, d) float32 (d: the modality's embedding width), sent as halfvec.
        k' = k unless no query reached k usable pairs; a row with fewer hits than k' is
        padded with id -1 and similarity -inf (as `engine.TopK` says).
        """
        if k < 1:
            raise InvalidInput(f"k must be at least 1, not {k}")
        model = self.session.execute(text(_ENCODER.format(modality=self.modality))).first()
        if model is None:  # no pair yet: nothing to find
            n = len(queries)
            return np.full((n, 0), -1, dtype=np.int64), np.zeros((n, 0), dtype=np.float32)
        dim = int(model.dim)
        queries = _checked(queries, dim)
        n = len(queries)
        if n == 0:
            return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32)
        settings = {
            "hnsw.ef_search": str(self.ef_search or _ef_search_for(k)),
            "hnsw.iterative_scan": self.iterative_scan,
            "hnsw.max_scan_tuples": str(self.max_scan_tuples),
            # Sorting every usable pair is exact but defeats the index; the planner picks it
            # for collections it thinks small, since it cannot see the cost of `<=>`.
            "enable_sort": "off",
        }
        # SET LOCAL outlives a released savepoint; rolling back to one restores the caller's.
        savepoint = self.session.begin_nested()
        try:
            self.session.execute(
                _SET_LOCAL, {"names": list(settings), "values": list(settings.values())}
            )
            rows = self.session.execute(
                text(_SQL.format(dim=dim, encoder=literal(model.name))),
                {"flat": queries.ravel().tolist(), "n": n, "rows": self._rows(k)},
            ).all()
        finally:
            savepoint.rollback()
        return _to_arrays(rows, n, k)

    def _rows(self, k: int) -> int:
        return max(k, math.ceil(self.overfetch * k))


def _ef_search_for(k: int) -> int:
    return min(max(40, math.ceil(_EF_PER_K * k)), _MAX_EF_SEARCH)


def _checked(queries: np.ndarray, dim: int) -> np.ndarray:
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise InvalidInput(f"queries must be (n, {dim}), not {queries.shape}")
    if not np.isfinite(queries).all():
        raise InvalidInput("queries must be finite")
    return queries


def _to_arrays(rows: list, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    query = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)) - 1
    ids = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    sims = 1.0 - np.fromiter((r[2] for r in rows), dtype=np.float64, count=len(rows))
    # Relaxed iterative scans return rows slightly out of order: sort by (query, -sim, id).
    order = np.lexsort((ids, -sims, query))
    query, ids, sims = query[order], ids[order], sims[order]
    counts = np.bincount(query, minlength=n)
    width = min(int(counts.max()), k)
    rank = np.arange(len(query)) - (np.cumsum(counts) - counts)[query]
    kept = rank < width
    out_ids = np.full((n, width), -1, dtype=np.int64)
    out_sims = np.full((n, width), -np.inf, dtype=np.float32)
    out_ids[query[kept], rank[kept]] = ids[kept]
    out_sims[query[kept], rank[kept]] = sims[kept]
    return out_ids, out_sims
