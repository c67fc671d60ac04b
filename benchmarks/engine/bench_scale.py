"""The exact path as anchors grow: batched queries/s, single-query latency, memory, and the
fraction of the machine's read bandwidth and peak matmul rate it reaches.

Per query: relative representation against N anchor images (1280-d, top 800, ** 8), i.e.
the image side of a classification whose caption representations are cached. bfloat16
configurations run only where the CPU's bfloat16 matmul is at least as fast as float32's;
the int8 scan (float32 rerank, float32's results exactly) always runs.

    .venv/bin/python benchmarks/engine/bench_scale.py [--sizes 10000 100000 300000 1000000]
        [--json out.json] [--plot docs/img/engine-scale.png]
"""

import argparse
import gc
import json
import os
import statistics
from functools import partial
from pathlib import Path

import machine
import numpy as np
import synthetic
import torch

from asifdb.engine import ExactTopK, relative_representation

K, P, D = 800, 8, 1280

# (name, anchor dtype, scan dtype)
CONFIGS = [
    ("float32", torch.float32, torch.float32),
    ("float32, bfloat16 scan", torch.float32, torch.bfloat16),
    ("bfloat16", torch.bfloat16, torch.bfloat16),
    ("float32, int8 scan", torch.float32, torch.int8),
]
_SCAN_BYTES = {torch.float32: 4, torch.bfloat16: 2, torch.int8: 1}


def build(n: int, dtype: torch.dtype, scan_dtype: torch.dtype) -> ExactTopK:
    chunks = synthetic.chunks(n, D, seed=1)
    index = ExactTopK(next(chunks), dtype=dtype, scan_dtype=scan_dtype)
    stored = index.n_anchors
    for block in chunks:
        index.add(np.arange(stored, stored + len(block)), block)
        stored += len(block)
    return index


def represent(queries: torch.Tensor, index: ExactTopK) -> None:
    relative_representation(queries, index, k=K, p=P)


def measure(
    n: int,
    config: tuple[str, torch.dtype, torch.dtype],
    queries: torch.Tensor,
    bandwidth: float,
    peak: float,
    repeats: int,
) -> dict:
    """One table row: n anchors in one configuration."""
    name, dtype, scan_dtype = config
    index = build(n, dtype, scan_dtype)
    batch = machine.median_time(partial(represent, queries, index), repeats)
    represent(queries[:1], index)
    one = statistics.median(
        machine.timed(partial(represent, queries[i : i + 1], index)) for i in range(7)
    )
    rate = len(queries) / batch
    scanned = n * D * _SCAN_BYTES[scan_dtype]
    return {
        "anchors": n,
        "config": name,
        "mb_per_million": index.nbytes / n * 1e6 / 1e6,
        "batch_qps": rate,
        "of_peak": 2 * n * D * rate / 1e9 / peak,
        "one_ms": one * 1e3,
        "of_bandwidth": scanned / one / 1e9 / bandwidth,
    }


def plot(rows: list[dict], path: Path) -> None:
    """Per-query time against anchors, single and batched, log-log, one line per config."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for config in dict.fromkeys(r["config"] for r in rows):
        mine = [r for r in rows if r["config"] == config]
        n = [r["anchors"] for r in mine]
        ax.plot(n, [r["one_ms"] for r in mine], "o-", label=f"{config}: 1 query")
        batched = [1e3 / r["batch_qps"] for r in mine]
        ax.plot(n, batched, "s--", label=f"{config}: per query, batched")
    ax.axhline(100, color="grey", lw=0.8, ls=":")
    ax.axhline(1e3 / 150, color="grey", lw=0.8, ls=":")
    ax.set(xscale="log", yscale="log", xlabel="anchors", ylabel="ms per query")
    ax.set_title("Exact top-800 of 1280-d anchors, 2 shared cores")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", lw=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 300_000, 10**6])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    parser.add_argument(
        "--configs",
        nargs="+",
        choices=[c[0] for c in CONFIGS],
        help="only these configurations (default: all that can pay on this CPU)",
    )
    args = parser.parse_args()
    bandwidth = machine.read_bandwidth()
    peak = {dtype: machine.matmul_peak(dtype) for dtype in _SCAN_BYTES}
    configs = [c for c in CONFIGS if c[2] != torch.bfloat16 or machine.bfloat16_is_fast(peak)]
    if args.configs:
        configs = [c for c in CONFIGS if c[0] in args.configs]
    print(machine.describe())
    print(
        f"probe: read bandwidth {bandwidth:.1f} GB/s, matmul float32 {peak[torch.float32]:.1f} "
        f"GFLOP/s, bfloat16 {peak[torch.bfloat16]:.1f} GFLOP/s, int8 {peak[torch.int8]:.1f} GOP/s"
        + ("" if machine.bfloat16_is_fast(peak) else " (bfloat16 slower than float32: not run)")
    )
    print(
        f"| anchors | storage | MB per 1M anchors | {args.batch} queries: q/s | of peak matmul "
        "| 1 query: ms (median of 7) | of read bandwidth |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for n in args.sizes:
        queries = synthetic.matrix(args.batch, D, seed=4, clusters=max(1, n // 50))
        for config in configs:
            row = measure(n, config, queries, bandwidth, peak[config[2]], args.repeats)
            rows.append(row)
            print(
                f"| {n:,} | {row['config']} | {row['mb_per_million']:,.0f} "
                f"| {row['batch_qps']:.1f} | {row['of_peak']:.0%} | {row['one_ms']:.1f} "
                f"| {row['of_bandwidth']:.0%} |",
                flush=True,
            )
            gc.collect()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"bandwidth": bandwidth, "rows": rows}, indent=1))
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
