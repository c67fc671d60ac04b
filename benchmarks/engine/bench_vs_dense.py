"""Exact chunked path vs a straightforward dense torch implementation, same embeddings, same run.

Per batch of image queries: relative representations (top 800 of N anchor images, 1280-d,
** 8, normalised) and scores against 100 cached caption representations. Dense: full
similarity matrix, torch.topk, dense representation, dense product. Times are medians;
bfloat16 configurations run only where bfloat16 matmuls are at least as fast as float32's.

    .venv/bin/python benchmarks/engine/bench_vs_dense.py [--sizes 10000 100000 1000000]
"""

import argparse
import gc
import os
from functools import partial

import machine
import numpy as np
import synthetic
import torch

from asifdb.engine import ExactTopK, SparseRep, relative_representation, sparse_scores

K, P, D_IMAGE, D_TEXT, CAPTIONS = 800, 8, 1280, 384, 100


CONFIGS = [
    ("exact float32", torch.float32, None),
    ("exact float32, bfloat16 scan", torch.float32, torch.bfloat16),
    ("exact, bfloat16 anchors", torch.bfloat16, None),
    ("exact float32, int8 scan", torch.float32, torch.int8),
]


def dense_scores(queries: torch.Tensor, anchors: torch.Tensor, captions: torch.Tensor):
    sims = queries @ anchors.T
    values, indices = torch.topk(sims, K, dim=1)
    rep = torch.zeros_like(sims).scatter_(1, indices, values**P)
    rep /= torch.linalg.vector_norm(rep, dim=1, keepdim=True)
    return rep @ captions.T


def index_of(
    n: int, d: int, seed: int, dtype: torch.dtype, scan_dtype: torch.dtype | None = None
) -> ExactTopK:
    """An ExactTopK over synthetic anchors, filled chunk by chunk (no full float32 copy)."""
    chunks = synthetic.chunks(n, d, seed=seed)
    index = ExactTopK(next(chunks), dtype=dtype, scan_dtype=scan_dtype)
    stored = index.n_anchors
    for block in chunks:
        index.add(np.arange(stored, stored + len(block)), block)
        stored += len(block)
    return index


def caption_reps(n: int) -> SparseRep:
    captions = synthetic.matrix(CAPTIONS, D_TEXT, seed=3, clusters=max(1, n // 50))
    return relative_representation(captions, index_of(n, D_TEXT, 2, torch.float32), k=K, p=P)


def exact_scores(batch: torch.Tensor, index: ExactTopK, caption: SparseRep) -> np.ndarray:
    return sparse_scores(relative_representation(batch, index, k=K, p=P), caption)


def measure(n: int, batch: int, configs: list, repeats: int) -> None:
    """Prints the table rows for `n` anchors: dense first, then each exact configuration."""
    caption = caption_reps(n)
    caption_dense = torch.from_numpy(caption.dense())
    queries = synthetic.matrix(batch, D_IMAGE, seed=4, clusters=max(1, n // 50))
    anchors = synthetic.matrix(n, D_IMAGE, seed=1)
    reference = dense_scores(queries, anchors, caption_dense).numpy()
    dense = partial(dense_scores, anchors=anchors, captions=caption_dense)
    dense_batch = machine.median_time(partial(dense, queries), repeats)
    dense_one = machine.median_time(partial(dense, queries[:1]), 7)
    print(
        f"| {n:,} | dense torch float32 | {batch / dense_batch:.1f} | 1.0x "
        f"| {dense_one * 1e3:.1f} | 1.0x | 0 |",
        flush=True,
    )
    del anchors, caption_dense, dense
    gc.collect()
    for name, dtype, scan_dtype in configs:
        index = index_of(n, D_IMAGE, 1, dtype, scan_dtype)
        diff = float(np.abs(exact_scores(queries, index, caption) - reference).max())
        batch_time = machine.median_time(partial(exact_scores, queries, index, caption), repeats)
        one_time = machine.median_time(partial(exact_scores, queries[:1], index, caption), 7)
        print(
            f"| {n:,} | {name} | {batch / batch_time:.1f} | {dense_batch / batch_time:.2f}x "
            f"| {one_time * 1e3:.1f} | {dense_one / one_time:.2f}x | {diff:.1e} |",
            flush=True,
        )
        del index
        gc.collect()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    peak = {dtype: machine.matmul_peak(dtype) for dtype in (torch.float32, torch.bfloat16)}
    fast = machine.bfloat16_is_fast(peak)
    configs = [c for c in CONFIGS if fast or torch.bfloat16 not in c[1:]]
    print(machine.describe())
    print(
        f"matmul float32 {peak[torch.float32]:.1f} GFLOP/s, bfloat16 "
        f"{peak[torch.bfloat16]:.1f} GFLOP/s"
        + ("" if fast else " (bfloat16 slower than float32 here: not run)")
    )
    print(
        f"| anchors | path | {args.batch} queries: q/s | vs dense | 1 query: ms | vs dense "
        "| max abs score diff |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n in args.sizes:
        measure(n, args.batch, configs, args.repeats)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
