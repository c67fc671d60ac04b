"""The inverted-lists path (engine/ivf.py) beside the exact one on real-distribution anchors.

Per size and path, one fresh process: build time, single-query latency (median of 15), ASIF
top-1 agreement with the exact path on 512 real CIFAR-10 queries (k = 800, p = 8, the ten
class names in "a photo of a {}."), recall of the exact top 800, and the process's memory
(RssAnon, and RssFile: the float32 rows the IVF path maps from a file). Writes JSON.

    cd benchmarks/engine && flock /tmp/asifdb-bench.lock ../../.venv/bin/python bench_ivf.py \\
        --sizes 100000 1000000 --json results/ivf.json
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

K, P = 800, 8.0
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_ONE_QUERIES = 15


def memory() -> dict[str, int]:
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return {
        name: int(fields[name].split()[0]) * 1024
        for name in ("VmRSS", "RssAnon", "RssFile", "VmHWM")
    }


def _caption_rep(n: int):
    """The class captions' representations over the anchors' text side (exact, both paths)."""
    from asifdb.encoders.registry import DEFAULT_TEXT_ENCODER, get_encoder
    from asifdb.engine import ExactTopK, relative_representation

    texts = real_distribution.pairs(n)[1]
    captions = get_encoder(DEFAULT_TEXT_ENCODER, device="cpu").embed_batch(
        [f"a photo of a {c}." for c in CLASSES]
    )
    return relative_representation(captions, ExactTopK(texts), k=K, p=P)


def run_path(n: int, path: str, rows_file: Path, out: Path) -> None:
    """One path in this process: build, time, search all queries; neighbours saved to `out`."""
    import torch

    from asifdb.anchors.live import scan_dtypes
    from asifdb.engine import ExactTopK
    from asifdb.engine.ivf import IvfParams, IvfTopK

    queries = real_distribution.real_queries()
    ids = np.arange(n, dtype=np.int64)
    start = time.perf_counter()
    if path == "exact":
        rows = np.load(rows_file)  # in memory, as the live model holds them
        one_scan = scan_dtypes("auto")[0]  # what EXACT_SCAN=auto scans for one query
        index = ExactTopK.of_unit_rows(rows, ids=ids, scan_dtype=one_scan)
        search = index.search
    else:
        rows = np.load(rows_file, mmap_mode="r")
        coding, nprobe, shortlist = path.split("-")[1:]
        params = IvfParams(coding=coding, nprobe=int(nprobe), shortlist=float(shortlist))  # type: ignore[arg-type]
        index = IvfTopK(rows, ids=ids, params=params)
        search = index.search
        # The build read every row (k-means, list assignment, ExactTopK's norm check): drop them
        # from this process's pages, so RssFile counts what the queries read.
        rows._mmap.madvise(mmap.MADV_DONTNEED)
    build_s = time.perf_counter() - start
    search(queries[:1], K)
    one = []
    for i in range(_ONE_QUERIES):
        t = time.perf_counter()
        search(queries[i + 1 : i + 2], K)
        one.append(time.perf_counter() - t)
    t = time.perf_counter()
    found, sims = search(queries, K)
    all_s = time.perf_counter() - t
    np.savez(out, ids=found, sims=sims)
    result = {
        "anchors": n,
        "path": path,
        "build_s": build_s,
        "one_ms": float(np.median(one)) * 1e3,
        "all_512_s": all_s,
        "threads": torch.get_num_threads(),
        **memory(),
    }
    if path != "exact":
        result["index_bytes"] = index.nbytes
        result["n_lists"] = index.n_lists
    print(json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--paths",
        nargs="+",
        default=["exact", "ivf-pq-32-4", "ivf-flat-32-4"],
        help="exact, or ivf-<flat|pq>-<nprobe>-<shortlist per k>",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--reuse-exact",
        action="store_true",
        help="take the exact path's neighbours from an earlier run's cache, not timed again",
    )
    parser.add_argument("--run", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_path(int(args.run[0]), args.run[1], Path(args.run[2]), Path(args.run[3]))
        return
    import machine

    from asifdb.engine import classify, from_neighbours

    results = {"machine": machine.describe(), "k": K, "p": P, "rows": []}
    cache = real_distribution.CACHE
    for n in args.sizes:
        rows_file = cache / f"bench-ivf-{n}.npy"
        if not rows_file.exists():
            np.save(rows_file, real_distribution.anchors(n))
        caption_rep = _caption_rep(n)
        reference = None
        for path in args.paths:
            out = cache / f"bench-ivf-{n}-{path}.npz"
            if path == "exact" and args.reuse_exact and out.exists():
                got = np.load(out)
                rep = from_neighbours(got["ids"], got["sims"], P, n)
                labels = classify(rep, caption_rep, len(CLASSES), 1).labels
                reference = (got["ids"], got["sims"], labels)
                continue
            done = subprocess.run(
                [sys.executable, __file__, "--run", str(n), path, str(rows_file), str(out)],
                check=True,
                capture_output=True,
                text=True,
            )
            row = json.loads(done.stdout.strip().splitlines()[-1])
            got = np.load(out)
            rep = from_neighbours(got["ids"], got["sims"], P, n)
            labels = classify(rep, caption_rep, len(CLASSES), 1).labels
            if reference is None:
                reference = (got["ids"], got["sims"], labels)
            ids, sims, ref_labels = reference
            row["top1_agreement"] = float(np.mean(labels == ref_labels))
            row["recall"] = float(
                np.mean(
                    [len(np.intersect1d(a, b)) / K for a, b in zip(got["ids"], ids, strict=True)]
                )
            )
            # Each returned anchor's similarity against the exact path's, where both have it.
            exact_of = [
                dict(zip(a.tolist(), s.tolist(), strict=True))
                for a, s in zip(ids, sims, strict=True)
            ]
            row["sims_equal_exact"] = all(
                exact_of[i].get(int(a), float(s)) == float(s)
                for i in range(len(ids))
                for a, s in zip(got["ids"][i], got["sims"][i], strict=True)
            )
            results["rows"].append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
