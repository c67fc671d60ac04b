"""Approximate (pgvector HNSW) against exact (numpy) top-k over the anchors: recall, ASIF top-1
agreement and latency, across ef_search and iterative-scan modes, before and after revoking
10 % of the pairs. Results go to docs/benchmarks-ann.md; run with --help for the options.
"""

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from pgserver._commands import pg_ctl
from pgvector.psycopg import register_vector
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import IMAGE_DIM, World, copy_pairs  # noqa: E402

from asifdb.anchors import ann_index  # noqa: E402
from asifdb.anchors.ann import HnswTopK  # noqa: E402
from asifdb.db import embedded, schema  # noqa: E402
from asifdb.db.session import make_engine  # noqa: E402
from asifdb.engine import STORAGE_DTYPES, ExactTopK  # noqa: E402

log = logging.getLogger("bench_ann")

K = 800
P = 8.0
LABELS = 100
LICENCES = 10  # pairs go round-robin to 10 licences; revoking one removes 10 %
ENCODERS = ("img-enc", "txt-enc")
_CHUNK = 50_000
_QUERY_BLOCK = 32
# pgserver runs PostgreSQL as this system user when we are root (as asifdb.db.embedded does).
_SYSTEM_USER = "pgserver" if os.geteuid() == 0 else None
# As `asifdb ann build` makes it (asifdb.anchors.ann_index), with pgvector's defaults.
_INDEX = (
    f"CREATE INDEX {ann_index.INDEX_NAME} ON pair_embeddings "
    f"USING hnsw ((CAST(embedding AS halfvec({IMAGE_DIM}))) halfvec_cosine_ops) "
    f"WITH (m = 16, ef_construction = 64) WHERE encoder = {ann_index.literal(ENCODERS[0])}"
)


@dataclass(frozen=True)
class _Config:
    """One point of the sweep: HnswTopK's knobs."""

    mode: str
    ef_search: int
    overfetch: float = 1.0


@dataclass
class Data:
    """The anchors as stored (float16, as the halfvec columns hold them) and the queries."""

    image: np.ndarray  # (n, 1280) float16
    text: np.ndarray  # (n, 384) float16
    labels: np.ndarray  # (LABELS, 384) float32
    queries: np.ndarray  # (q, 1280) float32
    truth: np.ndarray  # (q,) the label each query was drawn from


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--anchors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--ef", default="100,200,400,800,1000")
    parser.add_argument("--modes", default="off,relaxed_order,strict_order")
    parser.add_argument(
        "--overfetch", default="1.5,2,3", help="relaxed_order at the largest ef, k x this rows"
    )
    parser.add_argument("--shared-buffers", default="4GB")
    parser.add_argument("--maintenance-work-mem", default="8GB")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--exact-only",
        action="store_true",
        help="time the exact paths only: no database, no index build",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    ef_grid = [int(e) for e in args.ef.split(",")]
    modes = args.modes.split(",")
    grid = [_Config(mode, ef) for mode in modes for ef in ef_grid]
    grid += [
        _Config("relaxed_order", max(ef_grid), float(o)) for o in args.overfetch.split(",") if o
    ]
    # After revoking: strict_order behaves as relaxed_order did above, so it is left out.
    revoked_grid = [c for c in grid if c.mode != "strict_order"]

    results: dict = {
        "anchors": args.anchors,
        "queries": args.queries,
        "k": K,
        "p": P,
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
    }
    data = _generate(args.anchors, args.queries, seed=0)
    if not args.exact_only:
        with _server(args.shared_buffers) as engine:
            results["load"] = _load(engine, data, args.maintenance_work_mem)
            positions = np.arange(args.anchors)
            results["hnsw"] = _sweep(engine, data, positions, grid, revoked=None)
            results["batched"] = _batched(engine, data)
            revoked = _revoke(engine, licence=LICENCES)
            usable = np.setdiff1d(positions, revoked)
            results["hnsw_revoked_10pct"] = _sweep(engine, data, usable, revoked_grid, revoked)
    results["exact_numpy"] = _exact_latency(data)
    results["exact_engine"] = _engine_latency(data)
    results["load_average_at_end"] = os.getloadavg()
    print(json.dumps(results, indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


def _generate(n: int, n_queries: int, seed: int) -> Data:
    started = time.perf_counter()
    world = World.make(max(n // 100, LABELS), seed)
    rng = np.random.default_rng(seed)
    concept = rng.integers(0, len(world.concepts), n)
    image = np.empty((n, 1280), dtype=np.float16)
    text_ = np.empty((n, 384), dtype=np.float16)
    for start in range(0, n, _CHUNK):
        chunk = slice(start, start + _CHUNK)
        image[chunk], text_[chunk] = world.pairs(concept[chunk], seed=seed + 1 + start)
    labels = rng.choice(len(world.concepts), LABELS, replace=False)
    truth = rng.integers(0, LABELS, n_queries)
    queries = world.images(labels[truth], seed=seed + n + 1)
    log.info("generated %d pairs in %.0f s", n, time.perf_counter() - started)
    return Data(image, text_, world.label_texts(labels), queries, truth)


@contextmanager
def _server(shared_buffers: str) -> Iterator[Engine]:
    """A throwaway embedded PostgreSQL under /tmp, tuned for the run, deleted afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="asifdb-bench-ann-"))
    pgdata = folder / "data"
    try:
        url = embedded.start(pgdata)
        with psycopg.connect(_plain(url), autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
            conn.execute("ALTER SYSTEM SET max_parallel_maintenance_workers = 1")
        # pg_ctl restart reuses the options embedded.start gave it (socket folder, no TCP).
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=pgdata, user=_SYSTEM_USER)
        engine = make_engine(url)
        schema.upgrade(engine)
        yield engine
        engine.dispose()
    finally:
        embedded.stop(pgdata)
        shutil.rmtree(folder, ignore_errors=True)


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _load(engine: Engine, data: Data, maintenance_work_mem: str) -> dict:
    """COPY the pairs (binary, index dropped), then build the image HNSW index; timed."""
    n = len(data.image)
    with psycopg.connect(_plain(engine.url.render_as_string(hide_password=False))) as conn:
        conn.execute(
            "INSERT INTO model_state (id, version, image_encoder, text_encoder) "
            "VALUES (1, 1, %s, %s) ON CONFLICT (id) DO UPDATE "
            "SET image_encoder = excluded.image_encoder, text_encoder = excluded.text_encoder",
            ENCODERS,
        )
        for licence in range(1, LICENCES + 1):
            conn.execute("INSERT INTO licenses (name) VALUES (%s)", (f"bench-{licence}",))
        conn.execute(f"DROP INDEX IF EXISTS {ann_index.INDEX_NAME}")
        conn.commit()
        register_vector(conn)
        started = time.perf_counter()
        copy_pairs(
            conn,
            (
                (data.image[start : start + _CHUNK], data.text[start : start + _CHUNK])
                for start in range(0, n, _CHUNK)
            ),
            encoders=ENCODERS,
            licences=LICENCES,
        )
        copy_s = time.perf_counter() - started
        log.info("copied %d pairs in %.0f s", n, copy_s)
        ids = conn.execute("SELECT min(id), max(id), count(*) FROM pairs").fetchone()
        assert ids == (1, n, n), f"pair ids are not 1..n in COPY order: {ids}"
        conn.execute(f"SET maintenance_work_mem = '{maintenance_work_mem}'")
        started = time.perf_counter()
        conn.execute(_INDEX)
        conn.execute(f"COMMENT ON INDEX {ann_index.INDEX_NAME} IS {ann_index.literal(ENCODERS[0])}")
        conn.commit()
        build_s = time.perf_counter() - started
        log.info("built the HNSW index in %.0f s", build_s)
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE pairs")
        conn.execute("VACUUM ANALYZE pair_embeddings")
        size = conn.execute(
            f"SELECT pg_relation_size('{ann_index.INDEX_NAME}'), "
            "pg_total_relation_size('pairs') + pg_total_relation_size('pair_embeddings')"
        ).fetchone()
    return {
        "copy_s": round(copy_s, 1),
        "index_build_s": round(build_s, 1),
        "index_mb": round(size[0] / 2**20),
        "table_with_toast_mb": round(size[1] / 2**20),
        "maintenance_work_mem": maintenance_work_mem,
        "max_parallel_maintenance_workers": 1,
    }


def _revoke(engine: Engine, licence: int) -> np.ndarray:
    """Revoke one licence; return the positions of its pairs (now unusable)."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE licenses SET status = 'revoked' WHERE id = :id"), {"id": licence})
        ids = conn.execute(
            text("SELECT id FROM pairs WHERE license_id = :id ORDER BY id"), {"id": licence}
        ).scalars()
        return np.fromiter(ids, dtype=np.int64) - 1


def _sweep(
    engine: Engine,
    data: Data,
    usable: np.ndarray,
    grid: list[_Config],
    revoked: np.ndarray | None,
) -> dict:
    """Every configuration: recall@K, ASIF top-1 agreement with exact, latency per query."""
    exact_ids, exact_sims = _exact_topk(data.image, usable, data.queries, K)
    asif = _Asif(data, usable)
    exact_labels = asif.top1(exact_ids, exact_sims)
    ranked = -np.sort(-np.stack(exact_sims), axis=1)
    rows = []
    with engine.connect() as conn:
        _warm_up(conn, data.queries)
        for config in grid:
            ids, sims, latency = _timed_searches(conn, data.queries, config)
            labels = asif.top1(ids, sims)
            recall = [
                len(np.intersect1d(got, want)) / K for got, want in zip(ids, exact_ids, strict=True)
            ]
            row = {
                "mode": config.mode,
                "ef_search": config.ef_search,
                "overfetch": config.overfetch,
                "recall_at_k": round(float(np.mean(recall)), 4),
                "min_recall": round(float(np.min(recall)), 4),
                "results_min": int(min(len(r) for r in ids)),
                "results_mean": round(float(np.mean([len(r) for r in ids])), 1),
                "top1_agreement": round(float(np.mean(labels == exact_labels)), 4),
                "top1_accuracy": round(float(np.mean(labels == data.truth)), 4),
                "p50_ms": round(1000 * float(np.median(latency)), 1),
                "p95_ms": round(1000 * float(np.percentile(latency, 95)), 1),
            }
            if revoked is not None:
                returned = np.concatenate(ids) - 1
                row["revoked_returned"] = int(np.isin(returned, revoked).sum())
            log.info("%s", row)
            rows.append(row)
    return {
        "exact_top1_accuracy": round(float(np.mean(exact_labels == data.truth)), 4),
        "exact_mean_sim_at_rank_1_100_800": [
            round(float(ranked[:, r].mean()), 3) for r in (0, 99, 799)
        ],
        "rows": rows,
    }


def _warm_up(conn: Connection, queries: np.ndarray) -> None:
    """Bring the index into the caches, so the timed rounds measure a warm server."""
    for query in queries[:20]:
        HnswTopK(conn, "image", ef_search=1000).search(query[None], K)
        conn.rollback()


def _timed_searches(
    conn: Connection, queries: np.ndarray, config: _Config
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """One query per search call (and per transaction), as a single request would run it."""
    ids, sims, latency = [], [], []
    top = HnswTopK(
        conn,
        "image",
        ef_search=config.ef_search,
        iterative_scan=config.mode,  # type: ignore[arg-type]
        overfetch=config.overfetch,
    )
    for query in queries:
        started = time.perf_counter()
        got_ids, got_sims = top.search(query[None], K)
        latency.append(time.perf_counter() - started)
        conn.rollback()
        ids.append(got_ids[0])
        sims.append(got_sims[0])
    return ids, sims, np.array(latency)


def _batched(engine: Engine, data: Data, batch: int = 16) -> dict:
    """Per-query latency when `batch` queries share one statement (ef 1000, relaxed order)."""
    latency = []
    with engine.connect() as conn:
        top = HnswTopK(conn, "image", ef_search=1000)
        for start in range(0, len(data.queries) - batch + 1, batch):
            started = time.perf_counter()
            top.search(data.queries[start : start + batch], K)
            latency.append((time.perf_counter() - started) / batch)
            conn.rollback()
    return {"batch": batch, "per_query_p50_ms": round(1000 * float(np.median(latency)), 1)}


def _exact_topk(
    anchors: np.ndarray, usable: np.ndarray, queries: np.ndarray, k: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Ground truth: exact cosine top-k (pair ids, sims) over the usable anchors.

    Blocks of queries against chunks of anchors keep memory bounded at a million anchors.
    """
    ids, top_sims = [], []
    for first in range(0, len(queries), _QUERY_BLOCK):
        block = queries[first : first + _QUERY_BLOCK]
        sims = np.empty((len(block), len(usable)), dtype=np.float32)
        for start in range(0, len(usable), _CHUNK):
            rows = usable[start : start + _CHUNK]
            sims[:, start : start + len(rows)] = block @ anchors[rows].astype(np.float32).T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        ids += list(usable[top] + 1)
        top_sims += list(np.take_along_axis(sims, top, axis=1))
    return ids, top_sims


class _Asif:
    """ASIF's top-1 label (k=800, p=8) from given image neighbours; the caption side is exact.

    Written from the paper's definition (relative representations, top-k, power p, cosine);
    the label representations use the same usable anchors as the image neighbours.
    """

    def __init__(self, data: Data, usable: np.ndarray) -> None:
        ids, sims = _exact_topk(data.text, usable, data.labels, K)
        # Dense over all pair ids, so that an image neighbour indexes it by its pair id.
        self._labels = np.zeros((LABELS, len(data.text) + 1), dtype=np.float32)
        for label, (pair_ids, pair_sims) in enumerate(zip(ids, sims, strict=True)):
            weights = np.maximum(pair_sims, 0) ** P
            self._labels[label, pair_ids] = weights / np.linalg.norm(weights)

    def top1(self, ids: list[np.ndarray], sims: list[np.ndarray]) -> np.ndarray:
        labels = []
        for pair_ids, pair_sims in zip(ids, sims, strict=True):
            weights = np.maximum(pair_sims, 0) ** P
            labels.append(int(np.argmax(self._labels[:, pair_ids] @ weights)))
        return np.array(labels)


def _exact_latency(data: Data, repeats: int = 20) -> dict:
    """The numpy float32 exact top-k of one query (and of 16 at once) over every anchor."""
    anchors = data.image.astype(np.float32)

    def top_k(queries: np.ndarray) -> None:
        sims = queries @ anchors.T
        top = np.argpartition(-sims, K, axis=1)[:, :K]
        np.take_along_axis(top, np.argsort(-np.take_along_axis(sims, top, 1), axis=1), 1)

    return _latency(top_k, data.queries, repeats)


def _engine_latency(data: Data, repeats: int = 20) -> dict:
    """The engine's ExactTopK (what `auto` would otherwise run), as float32 and bfloat16."""
    results = {}
    for dtype in STORAGE_DTYPES:
        index = ExactTopK(data.image, dtype=dtype)
        results[str(dtype).removeprefix("torch.")] = _latency(
            lambda queries, index=index: index.search(queries, K), data.queries, repeats
        )
        del index
    return results


def _latency(top_k: Callable[[np.ndarray], object], queries: np.ndarray, repeats: int) -> dict:
    top_k(queries[:1])
    single = []
    for query in queries[:repeats]:
        started = time.perf_counter()
        top_k(query[None])
        single.append(time.perf_counter() - started)
    started = time.perf_counter()
    top_k(queries[:16])
    batched = (time.perf_counter() - started) / 16
    return {
        "single_p50_ms": round(1000 * float(np.median(single)), 1),
        "single_p95_ms": round(1000 * float(np.percentile(single, 95)), 1),
        "batch16_per_query_ms": round(1000 * batched, 1),
    }


if __name__ == "__main__":
    main()
