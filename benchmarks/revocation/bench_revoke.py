"""Revoking a licence of 10,000 pairs in a 100,000-pair collection, and the next query.

What it measures, in one run on one throwaway embedded PostgreSQL:

- the revocation itself (`services.licences.revoke` and its commit: one transaction);
- the first classification after it, through `services.classify` with the real encoders and
  the platform's live model: its latency, the usable pairs it saw and whether any of its
  evidence came from the revoked licence; then the same for the restore;
- the steady-state query, the live model's shared exact index against the straightforward
  way (copying the view's anchors into a fresh `ExactTopK` per query, what classify did
  before), as a ratio.

The anchors are synthetic (benchmarks/ann/synthetic.py: clustered, real dimensions 1280 and
384), loaded with COPY; the pairs' HNSW index is dropped before the load (a revocation
never touches pair rows, and `auto` is the exact scan at this size). The queries are real
CIFAR-10 images through the real encoders. Run:

    MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 HF_HUB_OFFLINE=1 \\
        .venv/bin/python benchmarks/revocation/bench_revoke.py \\
        --out benchmarks/revocation/results/bench_revoke.json
"""

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ann"))
from bench_ann import _plain, _server  # noqa: E402
from synthetic import World, copy_pairs  # noqa: E402

from asifdb import engine  # noqa: E402
from asifdb.anchors.ann_index import INDEX_NAME  # noqa: E402
from asifdb.anchors.live import LiveModel  # noqa: E402
from asifdb.context import Platform  # noqa: E402
from asifdb.db.session import session_factory  # noqa: E402
from asifdb.schemas.predictions import Classification  # noqa: E402
from asifdb.services import labelsets, licences  # noqa: E402
from asifdb.services.classify import Options, classify  # noqa: E402
from asifdb.services.model import Encoders  # noqa: E402
from asifdb.settings import get_settings  # noqa: E402

log = logging.getLogger("bench_revoke")
CIFAR = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10"
TEMPLATES = ["a photo of a {}.", "a blurry photo of a {}.", "a close-up photo of a {}."]
_CHUNK = 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--licences", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="revoke/restore rounds")
    parser.add_argument("--queries", type=int, default=8, help="steady-state queries timed")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    encoders = Platform(get_settings()).encoders  # the configured ones, as every process loads them
    classes = (CIFAR / "classnames.txt").read_text().split()
    candidates = labelsets.check(classes, TEMPLATES)
    images = _images(args.queries + 2 * args.rounds + 1)
    report: dict = {
        "pairs": args.pairs,
        "licences": args.licences,
        "pairs_per_licence": args.pairs // args.licences,
        "loadavg_start": os.getloadavg(),
    }
    with _server("1GB") as db:
        report["load_s"] = _load(db.url.render_as_string(hide_password=False), args, encoders)
        sessions = session_factory(db)
        live = LiveModel()

        def query(image: tuple[str, bytes]) -> tuple[float, Classification]:
            return timed_classify(sessions, live, encoders, candidates, image)

        cold, _ = query(images.pop())
        report["first_query_s"] = round(cold, 3)  # loads the anchors, builds the indexes
        report["steady"] = _steady(sessions, live, encoders, images[: args.queries], query)
        images = images[args.queries :]
        rounds = []
        for r in range(args.rounds):
            name = f"bench-{1 + r % args.licences}"
            rounds.append(_round(sessions, live, encoders, name, query, images.pop(), images.pop()))
            log.info("round %d: %s", r, rounds[-1])
        report["rounds"] = rounds
    report["loadavg_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


def timed_classify(sessions, live: LiveModel, encoders: Encoders, candidates, image) -> tuple:
    """One recorded classification of `image` through the live model (exact path): (seconds,
    its result)."""
    started = time.perf_counter()
    with sessions.begin() as session:
        [result] = classify(
            session,
            live=live,
            encoders=encoders,
            images=[image],
            candidates=candidates,
            options=Options(method="exact"),
            client="bench",
            channel="bench",
        )
    return time.perf_counter() - started, result


def _images(n: int) -> list[tuple[str, bytes]]:
    files = sorted((CIFAR / "test").rglob("*.png"))[::97][:n]
    return [(f.name, f.read_bytes()) for f in files]


def _load(url: str, args: argparse.Namespace, encoders: Encoders) -> float:
    """COPY `args.pairs` synthetic pairs, round-robin over the licences, all usable at v1."""
    world = World.make(200, seed=5)
    concepts = np.random.default_rng(6).integers(0, 200, args.pairs)
    started = time.perf_counter()
    with psycopg.connect(_plain(url)) as conn:
        conn.execute(
            "UPDATE model_state SET image_encoder = %s, text_encoder = %s WHERE id = 1",
            (encoders.image.name, encoders.text.name),
        )
        for licence in range(1, args.licences + 1):
            conn.execute("INSERT INTO licenses (name) VALUES (%s)", (f"bench-{licence}",))
        conn.execute(f"DROP INDEX IF EXISTS {INDEX_NAME}")
        conn.commit()
        register_vector(conn)
        copy_pairs(
            conn,
            (
                world.pairs(concepts[start : start + _CHUNK], seed=start)
                for start in range(0, args.pairs, _CHUNK)
            ),
            encoders=(encoders.image.name, encoders.text.name),
            licences=args.licences,
        )
        log.info("copied %d pairs", args.pairs)
        conn.execute("INSERT INTO pair_usability (pair_id, from_version) SELECT id, 1 FROM pairs")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return round(time.perf_counter() - started, 1)


def _steady(sessions, live: LiveModel, encoders: Encoders, images, query) -> dict:
    """Whole queries, and the image side alone: shared index vs a fresh copy per query."""
    totals = [query(image)[0] for image in images]
    with sessions.begin() as session:
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        view = live.view(session)
    emb = encoders.image.embed_batch([data for _, data in images])
    shared, fresh = [], []
    for i in range(len(images)):
        q = emb[i : i + 1]
        started = time.perf_counter()
        a = live.representation(view, "image", q, 800, 8.0)
        shared.append(time.perf_counter() - started)
        started = time.perf_counter()
        b = engine.relative_representation(q, view.image_anchors(), 800, 8.0)
        fresh.append(time.perf_counter() - started)
        agree = np.array_equal(a.indices, b.indices)
        assert agree or np.abs(a.similarities - b.similarities).max() < 1e-6
    return {
        "query_s_median": round(statistics.median(totals), 3),
        "image_side_shared_index_s_median": round(statistics.median(shared), 4),
        "image_side_fresh_copy_s_median": round(statistics.median(fresh), 4),
        "ratio_fresh_over_shared": round(statistics.median(fresh) / statistics.median(shared), 1),
        "usable_pairs": int(view.rows.size),
    }


def _neighbours_from(sessions, live: LiveModel, encoders, image, licence_id: int) -> int:
    """Of the image's k image-side neighbours and every cached caption's k caption-side
    neighbours, how many pairs belong to the licence, in the model as it is now."""
    with sessions.begin() as session:
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        view = live.view(session)
        ids_of_licence = set(
            session.execute(
                text("SELECT id FROM pairs WHERE license_id = :l"), {"l": licence_id}
            ).scalars()
        )
    emb = encoders.image.embed_batch([image[1]])
    image_side = view.pair_ids[live.representation(view, "image", emb, 800, 8.0).indices]
    caption_side = [
        reps.representation().indices for _, reps in live._captions.values()
    ]  # indices are pair ids
    found = np.isin(image_side, list(ids_of_licence)).sum()
    found += sum(np.isin(c, list(ids_of_licence)).sum() for c in caption_side)
    return int(found)


def _round(sessions, live, encoders, name: str, query, after_revoke, after_restore) -> dict:
    """Revoke `name`, query, restore, query: timings and what each query saw."""
    with sessions() as session:
        licence_id = session.execute(
            text("SELECT id FROM licenses WHERE name = :n"), {"n": name}
        ).scalar_one()
    before = _neighbours_from(sessions, live, encoders, after_revoke, licence_id)
    started = time.perf_counter()
    with sessions.begin() as session:
        revoked = licences.revoke(session, licence=name, reason="benchmark", actor="bench")
    revoke_s = time.perf_counter() - started
    next_s, result = query(after_revoke)
    leaked = _evidence_from(sessions, result.prediction_id, licence_id)
    after = _neighbours_from(sessions, live, encoders, after_revoke, licence_id)
    started = time.perf_counter()
    with sessions.begin() as session:
        restored = licences.restore(session, licence=name, actor="bench")
    restore_s = time.perf_counter() - started
    next_restore_s, back = query(after_restore)
    return {
        "licence": name,
        "revoke_s": round(revoke_s, 3),
        "pairs_removed": revoked.pairs_removed,
        "next_query_s": round(next_s, 3),
        "next_query_usable_pairs": result.usable_pairs,
        "next_query_evidence_pairs": result.evidence_pairs,
        "next_query_evidence_from_revoked": leaked,
        "neighbours_from_licence_before_revoke": before,
        "neighbours_from_licence_after_revoke": after,
        "restore_s": round(restore_s, 3),
        "pairs_restored": restored.pairs_restored,
        "after_restore_query_s": round(next_restore_s, 3),
        "after_restore_usable_pairs": back.usable_pairs,
    }


def _evidence_from(sessions, prediction_id: int, licence_id: int) -> int:
    """How many of the prediction's evidence pairs belong to the licence (must be 0)."""
    with sessions() as session:
        return session.execute(
            text(
                "SELECT count(*) FROM prediction_evidence e JOIN pairs p ON p.id = e.pair_id "
                "WHERE e.prediction_id = :pid AND p.license_id = :l"
            ),
            {"pid": prediction_id, "l": licence_id},
        ).scalar_one()


if __name__ == "__main__":
    main()
