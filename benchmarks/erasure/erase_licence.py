"""Erasing a licence of 10,000 pairs from a 100,000-pair collection, with the HNSW index built.

What it measures, in one run on one throwaway embedded PostgreSQL:

- the erasure (`services.erasure.erase`, the function every adapter calls) phase by phase, as
  the report itself times them: sampling the stored bytes and searching the table files for
  them, the removal transaction, the blobs, the rewrite of every table that held the data
  (VACUUM FULL, which also rebuilds the HNSW index) and the checks;
- reading the stored report afterwards (`services.erasure.report`, what `asifdb licenses
  erasure-report` and the API call);
- how long classifications wait meanwhile: a second thread classifies one real CIFAR-10
  image in a loop through the platform's live model (each call records a prediction), before,
  during and after the erasure; every call's latency is attributed to the phase it started in.

The anchors are synthetic (benchmarks/ann/synthetic.py: clustered, real dimensions 1280 and
384), loaded with COPY exactly as benchmarks/revocation/bench_revoke.py loads them; each pair
of the erased licence gets a distinct image blob in a temporary blob store. A few predictions
are made before the revocation so the erased pairs have evidence to keep. Run:

    MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 HF_HUB_OFFLINE=1 \\
        flock /tmp/asifdb-bench.lock .venv/bin/python benchmarks/erasure/erase_licence.py \\
        --out benchmarks/erasure/results/erase_licence.json
"""

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ann"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "revocation"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from bench_ann import _plain, _server  # noqa: E402
from bench_revoke import CIFAR, TEMPLATES, _images, _load, timed_classify  # noqa: E402
from machine import describe  # noqa: E402

from asifdb.anchors import ann_index  # noqa: E402
from asifdb.anchors.live import LiveModel  # noqa: E402
from asifdb.blobs import BlobStore  # noqa: E402
from asifdb.context import Platform  # noqa: E402
from asifdb.db.session import session_factory  # noqa: E402
from asifdb.services import erasure, labelsets, licences  # noqa: E402
from asifdb.settings import get_settings  # noqa: E402

log = logging.getLogger("erase_licence")
ERASED = "bench-1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--licences", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    encoders = Platform(get_settings()).encoders  # the configured ones, as every process loads them
    candidates = labelsets.check((CIFAR / "classnames.txt").read_text().split(), TEMPLATES)
    [image, *history] = _images(4)  # one to classify in the loop, three for history
    result: dict = {
        "pairs": args.pairs,
        "pairs_erased": args.pairs // args.licences,
        "machine": describe(),
        "loadavg_start": os.getloadavg(),
    }
    with _server("1GB") as db, tempfile.TemporaryDirectory(prefix="asifdb-bench-blobs-") as tmp:
        url = _plain(db.url.render_as_string(hide_password=False))
        result["load_s"] = _load(db.url.render_as_string(hide_password=False), args, encoders)
        blobs = BlobStore(tmp)
        result["blobs_written"] = _give_blobs(url, blobs)
        mark = time.perf_counter()
        ann_index.build(db, ann_index.BuildParams(memory="2GB", workers=1))
        result["hnsw_build_s"] = round(time.perf_counter() - mark, 1)
        with psycopg.connect(url) as conn:
            pgdata = Path(conn.execute("SHOW data_directory").fetchone()[0])
            result["sizes_before"] = _sizes(conn)
        sessions = session_factory(db)
        live = LiveModel()

        def query() -> float:
            return timed_classify(sessions, live, encoders, candidates, image)[0]

        for _ in history:  # predictions whose evidence includes the licence's pairs
            query()
        with sessions.begin() as session:
            licences.revoke(session, licence=ERASED, reason="benchmark", actor="bench")
        query()  # the revoked model is loaded before the erasure starts
        phases: list[tuple[float, str]] = [(time.perf_counter(), "before")]
        calls: list[tuple[float, float]] = []
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                calls.append((started, query()))

        worker = threading.Thread(target=loop, daemon=True)
        worker.start()
        time.sleep(10)

        def progress(message: str) -> None:
            log.info("erasure: %s", message)
            phases.append((time.perf_counter(), message.split(" (")[0]))

        mark = time.perf_counter()
        report = erasure.erase(
            sessions=sessions,
            engine=db,
            blobs=blobs,
            licence=ERASED,
            reason="benchmark",
            actor="bench",
            pgdata=pgdata,
            live=live,
            on_progress=progress,
        )
        result["erase_s"] = round(time.perf_counter() - mark, 1)
        phases.append((time.perf_counter(), "after"))
        time.sleep(10)
        stop.set()
        worker.join()
        mark = time.perf_counter()
        with sessions() as session:
            stored = erasure.report(session, licence=ERASED)
        result["report_read_s"] = round(time.perf_counter() - mark, 4)
        assert stored.passed and report.passed, [asdict(c) for c in report.checks]
        result["report_seconds"] = report.seconds
        result["removed"] = report.removed
        result["checks"] = {c.name: c.passed for c in report.checks}
        result["queries_by_phase"] = _by_phase(calls, phases)
        with psycopg.connect(url) as conn:
            result["sizes_after"] = _sizes(conn)
    result["loadavg_end"] = os.getloadavg()
    print(json.dumps(result, indent=2, default=str))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")


def _give_blobs(url: str, blobs: BlobStore) -> int:
    """A distinct image blob for each pair of the erased licence (its sha256 in the row)."""
    with psycopg.connect(url) as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT p.id FROM pairs p JOIN licenses l ON l.id = p.license_id WHERE l.name = %s",
                (ERASED,),
            )
        ]
        conn.execute("CREATE TEMP TABLE shas (id bigint, sha text)")
        with conn.cursor().copy("COPY shas FROM STDIN") as copy:
            for pair_id in ids:
                data = f"benchmark image of pair {pair_id} ".encode() * 64
                copy.write_row((pair_id, blobs.put(data)))
        conn.execute("UPDATE pairs p SET image_sha256 = s.sha FROM shas s WHERE s.id = p.id")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE pairs")
    return len(ids)


def _sizes(conn: psycopg.Connection) -> dict[str, int]:
    """Bytes on disk of the pairs table (with TOAST) and of its HNSW index."""
    row = conn.execute(
        "SELECT pg_total_relation_size('pairs') - pg_indexes_size('pairs'), "
        "coalesce(pg_relation_size(to_regclass(%s)), 0)",
        (ann_index.INDEX_NAME,),
    ).fetchone()
    return {"pairs_table_bytes": row[0], "hnsw_index_bytes": row[1]}


def _by_phase(calls: list[tuple[float, float]], phases: list[tuple[float, str]]) -> list[dict]:
    """Per phase (the erasure's progress messages), the classifications that started in it."""
    out = []
    for (start, name), (end, _) in zip(phases, phases[1:] + [(float("inf"), "")], strict=True):
        took = [s for t, s in calls if start <= t < end]
        out.append(
            {
                "phase": name,
                "phase_s": None if end == float("inf") else round(end - start, 1),
                "queries": len(took),
                "median_s": round(statistics.median(took), 3) if took else None,
                "max_s": round(max(took), 3) if took else None,
            }
        )
    return out


if __name__ == "__main__":
    main()
