"""10M anchors on this machine (issue 24, target 4): the inverted-lists path over rows on disk,
against an exact scan streamed over the same rows.

The anchors are real-distribution ones (`real_distribution.write_anchors`: the 20,000 real
EfficientNet-Lite0 embeddings of the default pairs, then random mixes of two of them plus
noise), written once to a float32 .npy file (n * 5,120 bytes: 51 GB at 10M, more than this
machine's memory). Measured, and written to JSON:

- the similarity distribution (pairwise mean / std, a query's 800th neighbour), beside the
  figures, to show the anchors are packed as real ones are;
- the exact answer, streamed: the rows in shards of `--shard` rows, each searched by
  `ExactTopK` (float32, the exact path's values) and merged by `engine.shards.merge_top_k`
  (exact: every shard's full top k); its wall time, and the read rate it ran at;
- the IVF path in a fresh process: `IvfTopK` built over the memory-mapped rows (build time),
  then per (nprobe, shortlist): one query at a time (median of 15) and all queries, with the
  process's memory (RssAnon: lists and codes; RssFile: the mapped rows it touched);
- ASIF top-1 agreement of each setting with the exact answer (k = 800, p = 8, the ten CIFAR-10
  class names in "a photo of a {}.", a mix taking the caption of the real pair weighing most
  in it) and recall of the exact top 800.

    cd benchmarks/engine && flock /tmp/asifdb-bench.lock ../../.venv/bin/python bench_10m.py \\
        --anchors 10000000 --json results/ivf-10m.json
    # 1M, rows in memory for the exact single-query baseline, longer shortlists:
    ... bench_10m.py --anchors 1000000 --exact-in-memory --settings 100:16 100:32 200:64 \
        --json results/ivf-1m-sweep.json

The rows file stays in ASIFDB_BENCH_CACHE (default /tmp/asifdb-bench-cache) for a rerun;
`--remove` deletes it at the end.
"""

import argparse
import json
import mmap
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import real_distribution
from bench_ivf import CLASSES, K, P, memory

_ONE_QUERIES = 15
SETTINGS = ((32, 4.0), (64, 16.0), (128, 32.0))  # (nprobe, shortlist per wanted neighbour)


def exact_one_query(rows_file: Path, queries: np.ndarray) -> dict:
    """The exact path as the live model runs it, rows in memory (where they fit): the scan
    `EXACT_SCAN=auto` picks for one query, median of 15 single queries."""
    from asifdb.anchors.live import scan_dtypes
    from asifdb.engine import ExactTopK

    rows = np.load(rows_file)
    t = time.perf_counter()
    index = ExactTopK.of_unit_rows(
        rows, ids=np.arange(len(rows), dtype=np.int64), scan_dtype=scan_dtypes("auto")[0]
    )
    build_s = time.perf_counter() - t
    index.search(queries[:1], K)
    one = []
    for i in range(_ONE_QUERIES):
        t = time.perf_counter()
        index.search(queries[i + 1 : i + 2], K)
        one.append(time.perf_counter() - t)
    return {"build_s": build_s, "one_ms": float(np.median(one)) * 1e3, **memory()}


def run_ivf(
    n: int,
    rows_file: Path,
    out: Path,
    n_queries: int,
    settings: list[tuple[int, float]],
    *,
    random_reads: bool,
) -> None:
    """In this (fresh) process: build the lists over the mapped rows, then time each setting;
    neighbours of every setting saved to `out` (npz), figures printed as JSON lines."""
    import torch

    from asifdb.engine.ivf import IvfParams, IvfTopK

    queries = real_distribution.real_queries(n_queries)
    rows = np.load(rows_file, mmap_mode="r")
    start = time.perf_counter()
    index = IvfTopK(rows, ids=np.arange(n, dtype=np.int64), params=IvfParams(coding="pq"))
    build_s = time.perf_counter() - start
    # The build read every row: drop them from this process's pages, so that RssFile counts
    # what the queries read.
    rows._mmap.madvise(mmap.MADV_DONTNEED)
    if random_reads:
        # The rerank reads a few thousand scattered rows a query: readahead would read
        # 128 KiB and more around each (most of it never used) from disk.
        rows._mmap.madvise(mmap.MADV_RANDOM)
    built = {"build_s": build_s, "n_lists": index.n_lists, "index_bytes": index.nbytes}
    print(json.dumps({"built": built, **memory()}), flush=True)
    saved = {}
    for nprobe, shortlist in settings:

        def search(q: np.ndarray, nprobe: int = nprobe, shortlist: float = shortlist) -> tuple:
            return index.search(q, K, nprobe=nprobe, shortlist=shortlist)

        search(queries[:1])
        one = []
        for i in range(_ONE_QUERIES):
            t = time.perf_counter()
            search(queries[i + 1 : i + 2])
            one.append(time.perf_counter() - t)
        t = time.perf_counter()
        found, sims = search(queries)
        all_s = time.perf_counter() - t
        saved[f"ids_{nprobe}_{shortlist:g}"], saved[f"sims_{nprobe}_{shortlist:g}"] = found, sims
        row = {
            "nprobe": nprobe,
            "shortlist": shortlist,
            "one_ms": float(np.median(one)) * 1e3,
            "one_ms_max": float(np.max(one)) * 1e3,
            "all_s": all_s,
            "threads": torch.get_num_threads(),
            **memory(),
        }
        print(json.dumps(row), flush=True)
    np.savez(out, **saved)


def exact_streamed(rows: np.ndarray, queries: np.ndarray, shard: int) -> dict:
    """The exact top K of every query over all rows, a shard at a time (each read into
    memory, searched, dropped) and merged exactly."""
    from asifdb.engine import ExactTopK
    from asifdb.engine.shards import ShardAnswer, merge_top_k

    answers, read_s, search_s = [], 0.0, 0.0
    for start in range(0, len(rows), shard):
        t = time.perf_counter()
        chunk = np.array(rows[start : start + shard])  # read from disk (or page cache)
        read_s += time.perf_counter() - t
        t = time.perf_counter()
        index = ExactTopK.of_unit_rows(
            chunk, ids=np.arange(start, start + len(chunk), dtype=np.int64)
        )
        keys, sims = index.search(queries, K)
        search_s += time.perf_counter() - t
        answers.append(ShardAnswer(0, keys, sims))
        del index, chunk
    t = time.perf_counter()
    keys, sims = merge_top_k(answers, K)
    merge_s = time.perf_counter() - t
    return {
        "keys": keys,
        "sims": sims,
        "read_s": read_s,
        "search_s": search_s,
        "merge_s": merge_s,
        "read_gb_per_s": rows.nbytes / read_s / 1e9,
    }


def caption_rep(first: np.ndarray):
    """The class captions' representations over the anchors' text side: row r's caption is
    real pair first[r]'s, so its similarity is that caption's; top K by similarity, ties by
    key (the same representation for both paths)."""
    from asifdb.encoders.registry import DEFAULT_TEXT_ENCODER, get_encoder
    from asifdb.engine import from_neighbours

    texts = real_distribution.real_captions()
    captions = get_encoder(DEFAULT_TEXT_ENCODER, device="cpu").embed_batch(
        [f"a photo of a {c}." for c in CLASSES]
    )
    per_real = captions.astype(np.float32) @ texts.T  # (10, 20,000)
    keys = np.empty((len(CLASSES), K), dtype=np.int64)
    sims = np.empty((len(CLASSES), K), dtype=np.float32)
    for c in range(len(CLASSES)):
        row = per_real[c][first]
        keys[c] = np.argsort(-row, kind="stable")[:K]
        sims[c] = row[keys[c]]
    return from_neighbours(keys, sims, P, len(first))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchors", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--shard", type=int, default=500_000)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--settings",
        nargs="+",
        default=[f"{p}:{s:g}" for p, s in SETTINGS],
        help="nprobe:shortlist pairs searched on one build",
    )
    parser.add_argument(
        "--exact-in-memory",
        action="store_true",
        help="also time the exact path's single query with the rows in memory (they must fit)",
    )
    parser.add_argument(
        "--random-reads",
        action="store_true",
        help="map the rows with MADV_RANDOM for the queries (no readahead around each row)",
    )
    parser.add_argument(
        "--reuse-exact",
        action="store_true",
        help="take the exact neighbours from an earlier run's cache (not timed again)",
    )
    parser.add_argument("--remove", action="store_true", help="delete the rows file at the end")
    parser.add_argument("--run", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--run-exact", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    settings = [(int(p), float(s)) for p, s in (x.split(":") for x in args.settings)]
    if args.run:
        run_ivf(*_run_args(args.run), settings, random_reads=args.random_reads)
        return
    if args.run_exact:
        queries = real_distribution.real_queries(int(args.run_exact[1]))
        print(json.dumps(exact_one_query(Path(args.run_exact[0]), queries)), flush=True)
        return
    import machine

    from asifdb.engine import classify, from_neighbours

    n = args.anchors
    cache = real_distribution.CACHE
    cache.mkdir(parents=True, exist_ok=True)
    rows_file, first_file = cache / f"bench-10m-{n}.npy", cache / f"bench-10m-{n}-first.npy"
    result: dict = {"machine": machine.describe(), "anchors": n, "k": K, "p": P}
    if not (rows_file.exists() and first_file.exists()):
        t = time.perf_counter()
        np.save(first_file, real_distribution.write_anchors(rows_file, n))
        result["write_s"] = time.perf_counter() - t
    rows, first = np.load(rows_file, mmap_mode="r"), np.load(first_file)
    queries = real_distribution.real_queries(args.queries)
    result["rows_bytes"] = rows.nbytes
    result["distribution"] = real_distribution.distribution(rows, queries)
    print(json.dumps(result), flush=True)

    cached = cache / f"bench-10m-{n}-exact-{args.queries}.npz"
    if args.reuse_exact and cached.exists():
        got = np.load(cached)
        exact = {"keys": got["keys"], "sims": got["sims"]}
        result["exact"] = {"from": "an earlier run's cache, not timed again"}
    else:
        t = time.perf_counter()
        exact = exact_streamed(rows, queries, args.shard)
        np.savez(cached, keys=exact["keys"], sims=exact["sims"])
        result["exact"] = {
            "wall_s": time.perf_counter() - t,
            **{k: v for k, v in exact.items() if k not in ("keys", "sims")},
            "shard": args.shard,
        }
    print(json.dumps(result["exact"]), flush=True)
    if args.exact_in_memory:
        result["exact"]["in_memory"] = _child(["--run-exact", str(rows_file), str(args.queries)])[0]
        print(json.dumps(result["exact"]["in_memory"]), flush=True)
    captions = caption_rep(first)
    labels = classify(from_neighbours(exact["keys"], exact["sims"], P, n), captions, 10, 1).labels

    out = cache / f"bench-10m-{n}-ivf.npz"
    lines = _child(
        ["--run", str(n), str(rows_file), str(out), str(args.queries), "--settings"]
        + args.settings
        + (["--random-reads"] if args.random_reads else [])
    )
    result["ivf"] = {"build": lines[0], "settings": []}
    got = np.load(out)
    for row in lines[1:]:
        tag = f"{row['nprobe']}_{row['shortlist']:g}"
        ids, sims = got[f"ids_{tag}"], got[f"sims_{tag}"]
        found = classify(from_neighbours(ids, sims, P, n), captions, 10, 1).labels
        row["top1_agreement"] = float(np.mean(found == labels))
        row["recall"] = float(
            np.mean(
                [len(np.intersect1d(a, b)) / K for a, b in zip(ids, exact["keys"], strict=True)]
            )
        )
        result["ivf"]["settings"].append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.remove:
        for path in (rows_file, first_file, out, cached):
            path.unlink(missing_ok=True)


def _run_args(run: list[str]) -> tuple[int, Path, Path, int]:
    return int(run[0]), Path(run[1]), Path(run[2]), int(run[3])


def _child(arguments: list[str]) -> list[dict]:
    """This script in a fresh process (its memory its own): the JSON lines it prints."""
    done = subprocess.run(
        [sys.executable, __file__, *arguments], check=True, capture_output=True, text=True
    )
    return [json.loads(line) for line in done.stdout.strip().splitlines()]


if __name__ == "__main__":
    main()
