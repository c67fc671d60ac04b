"""Top 800 neighbours on real-distribution anchors: dense torch, a relreps-style chunked einsum
and every ExactTopK scan (and what EXACT_SCAN=auto runs), side by side in one run.

Anchors: the default pairs' real EfficientNet-Lite0 embeddings, then mixes of two of them
(real_distribution.py); queries: 512 real CIFAR-10 test images. Prints a markdown table and
the similarity distribution per size; writes JSON.

    cd benchmarks/engine && flock /tmp/asifdb-bench.lock ../../.venv/bin/python bench_real.py \\
        --sizes 10000 20000 100000 --json results/real.json
"""

import argparse
import gc
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import machine
import numpy as np
import real_distribution
import torch

from asifdb.anchors.live import ONE_QUERY_AT_MOST, scan_dtypes
from asifdb.engine import ExactTopK

K = 800
# The relreps-style path holds at most this many similarities per query chunk.
_EINSUM_BUDGET = 1 << 28


def dense(queries: torch.Tensor, anchors: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Plain dense torch: the whole similarity matrix, then torch.topk."""
    values, indices = torch.topk(queries @ anchors.T, K, dim=1)
    return indices.numpy(), values.numpy()


def chunked_einsum(queries: torch.Tensor, anchors: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """As the ASIF authors' relreps: queries in chunks sized to a memory budget, each an
    einsum against all anchors and torch.topk (our own code, same method)."""
    rows = max(1, _EINSUM_BUDGET // len(anchors))
    indices, values = [], []
    for start in range(0, len(queries), rows):
        sims = torch.einsum("qd,nd->qn", queries[start : start + rows], anchors)
        top = torch.topk(sims, K, dim=1)
        indices.append(top.indices)
        values.append(top.values)
    return torch.cat(indices).numpy(), torch.cat(values).numpy()


def timed(run: Callable[[np.ndarray], object], queries: np.ndarray, repeats: int) -> dict:
    """Batch: median of `repeats` after a warm-up; one query: median over 7 queries."""
    run(queries)
    batch = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(queries)
        batch.append(time.perf_counter() - start)
    run(queries[:1])
    one = []
    for i in range(7):
        start = time.perf_counter()
        run(queries[i + 1 : i + 2])
        one.append(time.perf_counter() - start)
    return {"batch_s": float(np.median(batch)), "one_s": float(np.median(one))}


def measure(n: int, queries: np.ndarray, repeats: int, skip: set[str]) -> list[dict]:
    anchors = real_distribution.anchors(n)
    dist = real_distribution.distribution(anchors, queries)
    print(
        f"{n:,} anchors: pairwise cosine mean {dist['pairwise_mean']:.3f} std "
        f"{dist['pairwise_std']:.3f}; a query's 800th neighbour {dist['kth_of_3000']:.3f} "
        f"among 3,000, {dist['kth_of_all']:.3f} among all",
        flush=True,
    )
    a_t, q_t = torch.from_numpy(anchors), torch.from_numpy(queries)
    exact = ExactTopK.of_unit_rows(anchors, ids=np.arange(n))
    reference = exact.search(queries, K)
    rows = []

    def record(name: str, run: Callable[[np.ndarray], tuple], exact_path: bool) -> None:
        got = run(queries)
        if exact_path:
            same = bool(
                np.array_equal(got[0], reference[0]) and np.array_equal(got[1], reference[1])
            )
        else:  # float32 matmul rounding: the same neighbours, up to ties at the 800th
            same = float(
                np.mean(
                    [
                        len(np.intersect1d(g, r)) / K
                        for g, r in zip(got[0], reference[0], strict=True)
                    ]
                )
            )
        row = {"anchors": n, "path": name, **timed(run, queries, repeats), "same": same}
        row["batch_qps"] = len(queries) / row["batch_s"]
        rows.append(row)
        print(
            f"  {name}: {row['batch_qps']:.1f} q/s, one {row['one_s'] * 1e3:.2f} ms, same {same}",
            flush=True,
        )

    record("dense torch", lambda q: dense(torch.from_numpy(q), a_t), False)
    record(
        "relreps-style chunked einsum", lambda q: chunked_einsum(torch.from_numpy(q), a_t), False
    )
    del q_t
    copies = {"float32": torch.float32, "bfloat16": torch.bfloat16, "int8": torch.int8}
    for name, dtype in copies.items():
        if name in skip:
            continue
        index = ExactTopK.of_unit_rows(anchors, ids=np.arange(n), scan_dtype=dtype)
        record(f"ExactTopK, {name} scan", lambda q, i=index, s=dtype: i.search(q, K, scan=s), True)
        del index
        gc.collect()
    one_scan, batch_scan = scan_dtypes("auto")
    one = ExactTopK.of_unit_rows(anchors, ids=np.arange(n), scan_dtype=one_scan)
    many = ExactTopK.of_unit_rows(anchors, ids=np.arange(n), scan_dtype=batch_scan)

    def auto(q: np.ndarray) -> tuple:
        # As anchors/live.py serves EXACT_SCAN=auto: a copy per batch shape, each index planning.
        return (one if len(q) <= ONE_QUERY_AT_MOST else many).search(q, K)

    record("ExactTopK, EXACT_SCAN=auto", auto, True)
    rows[-1]["auto_scans"] = {"one": str(one.scan_plan()), "batch": str(many.scan_plan())}
    rows[-1]["distribution"] = dist
    base = rows[0]
    for row in rows:
        row["batch_vs_dense"] = base["batch_s"] / row["batch_s"]
        row["one_vs_dense"] = base["one_s"] / row["one_s"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[], help="ExactTopK scans not to run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(machine.describe())
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    queries = real_distribution.real_queries()
    real = real_distribution.real_anchors()
    print("real anchors:", real_distribution.distribution(real, queries), flush=True)
    rows = []
    for n in args.sizes:
        rows += measure(n, queries, args.repeats, set(args.skip))
        gc.collect()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("\n| anchors | path | 512 queries: q/s | vs dense | 1 query: ms | vs dense | results |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        same = r["same"]
        result = (
            ("= float32 exact" if same else "DIFFERENT")
            if isinstance(same, bool)
            else f"{same:.4%} of neighbours in common"
        )
        print(
            f"| {r['anchors']:,} | {r['path']} | {r['batch_qps']:,.1f} "
            f"| {r['batch_vs_dense']:.2f}x | {r['one_s'] * 1e3:,.2f} "
            f"| {r['one_vs_dense']:.2f}x | {result} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"describe": machine.describe(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
