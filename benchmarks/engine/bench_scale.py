"""The exact path as anchors grow: batched queries/s, single-query latency, memory, and the
fraction of the machine's memory bandwidth and peak matmul rate it reaches.

Per query: relative representation against N anchor images (1280-d, top 800, ** 8), i.e.
the image side of a classification whose caption representations are cached.

    .venv/bin/python benchmarks/engine/bench_scale.py [--sizes 10000 100000 300000 1000000]
"""

import argparse
import gc
import os
import statistics
import time
from functools import partial

import numpy as np
import synthetic
import torch

from asifdb.engine import ExactTopK, relative_representation

K, P, D = 800, 8, 1280


def probe_bandwidth() -> float:
    """GB/s reading a 2 GB float32 tensor (torch sum, all threads), best of 3."""
    x = torch.ones(512 * 1024 * 1024)
    x.sum()
    best = min(_timed(x.sum) for _ in range(3))
    return x.numel() * 4 / best / 1e9


def probe_matmul(dtype: torch.dtype, size: int) -> float:
    """GFLOP/s of a size^3 matmul in `dtype` (bfloat16 runs on AMX via oneDNN), best of 3."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(3))
    return 2 * size**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def build(n: int, dtype: torch.dtype) -> ExactTopK:
    chunks = synthetic.chunks(n, D, seed=1)
    index = ExactTopK(next(chunks), dtype=dtype)
    stored = index.n_anchors
    for block in chunks:
        index.add(np.arange(stored, stored + len(block)), block)
        stored += len(block)
    return index


def represent(queries: torch.Tensor, index: ExactTopK) -> None:
    relative_representation(queries, index, k=K, p=P)


def measure(
    n: int, dtype: torch.dtype, queries: torch.Tensor, bandwidth: float, peak: float
) -> str:
    """One table row: n anchors stored as `dtype`."""
    index = build(n, dtype)
    represent(queries[:8], index)
    batch = min(_timed(partial(represent, queries, index)) for _ in range(2 if n < 10**6 else 1))
    one = statistics.median(_timed(partial(represent, queries[i : i + 1], index)) for i in range(7))
    rate = len(queries) / batch
    flops = 2 * n * D * rate / 1e9
    scanned = n * D * (2 if dtype == torch.bfloat16 else 4) / one / 1e9
    name = "bfloat16" if dtype == torch.bfloat16 else "float32"
    per_million = index.nbytes / n * 1e6 / 1e6
    return (
        f"| {n:,} | {name} | {per_million:,.0f} | {rate:.1f} | {flops / peak:.0%} "
        f"| {one * 1e3:.1f} | {scanned / bandwidth:.0%} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 300_000, 10**6])
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    bandwidth = probe_bandwidth()
    peak = {
        torch.float32: probe_matmul(torch.float32, 2048),
        torch.bfloat16: probe_matmul(torch.bfloat16, 4096),
    }
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"probe: read bandwidth {bandwidth:.1f} GB/s, matmul float32 {peak[torch.float32]:.0f} "
        f"GFLOP/s, bfloat16 {peak[torch.bfloat16]:.0f} GFLOP/s"
    )
    print(
        f"| anchors | storage | MB per 1M anchors | {args.batch} queries: q/s | of peak matmul "
        "| 1 query: ms (median of 7) | of read bandwidth |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n in args.sizes:
        queries = synthetic.matrix(args.batch, D, seed=4, clusters=max(1, n // 50))
        for dtype in (torch.bfloat16, torch.float32):
            print(measure(n, dtype, queries, bandwidth, peak[dtype]), flush=True)
            gc.collect()


if __name__ == "__main__":
    main()
