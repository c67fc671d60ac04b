"""Anchors whose similarities are distributed like real embeddings, for the engine benchmarks.

Real EfficientNet-Lite0 embeddings of the default 20,000 pairs and of CIFAR-10 test images
(cached as .npy outside git); synthetic anchors are random mixes of two real ones plus a little
noise, renormalised, so that their cosines pack into the same narrow band as the real ones.
"""

import os
from pathlib import Path

import numpy as np
import real_data
import torch

CIFAR_TEST = real_data.SHARED_DATA / "cifar10" / "test"
CACHE = Path(os.environ.get("ASIFDB_BENCH_CACHE", "/tmp/asifdb-bench-cache"))
NOISE = 0.3  # norm of the noise added to a unit mix (fitted to the real distribution)
K = 800


def _embed(images: list[bytes]) -> np.ndarray:
    from asifdb.encoders.registry import DEFAULT_IMAGE_ENCODER, get_encoder

    encoder = get_encoder(DEFAULT_IMAGE_ENCODER, device="cpu")  # the platform's CPU runtime
    return encoder.embed_batch(images).astype(np.float32)


def real_anchors(n: int = 20_000) -> np.ndarray:
    """(n, 1280) float32 unit rows: the default pairs' images, embedded once and cached."""
    path = CACHE / f"anchors-{n}.npy"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, _embed(real_data.read_pairs(n).images))
    return np.load(path)


def real_captions(n: int = 20_000) -> np.ndarray:
    """(n, 384) float32 unit rows: the default pairs' captions (all-MiniLM-L6-v2), cached."""
    path = CACHE / f"captions-{n}.npy"
    if not path.exists():
        from asifdb.encoders.registry import DEFAULT_TEXT_ENCODER, get_encoder

        path.parent.mkdir(parents=True, exist_ok=True)
        encoder = get_encoder(DEFAULT_TEXT_ENCODER, device="cpu")
        np.save(path, encoder.embed_batch(real_data.read_pairs(n).captions).astype(np.float32))
    return np.load(path)


def real_queries(n: int = 512) -> np.ndarray:
    """(n, 1280) float32 unit rows: CIFAR-10 test images, classes in turn, embedded once."""
    path = CACHE / f"cifar10-queries-{n}.npy"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        per_class = [sorted(p.iterdir()) for p in sorted(CIFAR_TEST.iterdir()) if p.is_dir()]
        files = [f for group in zip(*per_class, strict=False) for f in group][:n]
        np.save(path, _embed([f.read_bytes() for f in files]))
    return np.load(path)


def mixed(real: np.ndarray, n: int, *, seed: int) -> np.ndarray:
    """(n, d) float32 unit rows: each a random mix of two real rows (the first weighing 0.8 to
    1), renormalised, plus isotropic noise of norm about NOISE, renormalised again."""
    return _mixed(real, n, seed=seed)[0]


def _mixed(real: np.ndarray, n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`mixed`'s rows and, for each, the real row weighing most in it."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    first = np.empty(n, dtype=np.int64)
    for start in range(0, n, 65_536):
        m = min(65_536, n - start)
        first[start : start + m] = rng.integers(0, len(real), m)
        a = real[first[start : start + m]]
        b = real[rng.integers(0, len(real), m)]
        w = rng.uniform(0.8, 1.0, (m, 1)).astype(np.float32)
        mix = w * a + (1 - w) * b
        mix /= np.linalg.norm(mix, axis=1, keepdims=True)
        noise = rng.standard_normal(mix.shape, dtype=np.float32) / np.sqrt(real.shape[1])
        rows = mix + NOISE * noise
        out[start : start + m] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out, first


def anchors(n: int, *, seed: int = 1) -> np.ndarray:
    """n anchors: the real ones first (as many as asked, up to 20,000), then mixes of them."""
    return pairs(n, seed=seed)[0]


def pairs(n: int, *, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """`anchors(n)` and their captions' embeddings (n, 384): a mix takes the caption of the
    real pair weighing most in it (ASIF's text side, for top-1 agreement)."""
    real = real_anchors()
    captions = real_captions()
    if n <= len(real):
        return np.ascontiguousarray(real[:n]), np.ascontiguousarray(captions[:n])
    rows, first = _mixed(real, n - len(real), seed=seed)
    return np.concatenate([real, rows]), np.concatenate([captions, captions[first]])


def write_anchors(path: Path, n: int, *, seed: int = 1, chunk: int = 262_144) -> np.ndarray:
    """`n` anchors as `pairs(n)` makes them (the real 20,000, then mixes), streamed to a .npy
    file at `path` a chunk at a time (each chunk its own seed: 10M rows never sit in memory);
    returns, per row, the real pair whose caption it takes (its own for the real rows)."""
    real = real_anchors()
    rows = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, real.shape[1]))
    first = np.empty(n, dtype=np.int64)
    held = min(n, len(real))
    rows[:held], first[:held] = real[:held], np.arange(held)
    for i, start in enumerate(range(held, n, chunk)):
        m = min(chunk, n - start)
        rows[start : start + m], first[start : start + m] = _mixed(real, m, seed=seed + i)
    rows.flush()
    del rows
    return first


def distribution(anchor_rows: np.ndarray, queries: np.ndarray, *, seed: int = 0) -> dict:
    """Mean and std of pairwise anchor cosines (3,000 sampled anchors), and the mean cosine
    of a query's 800th neighbour among those 3,000 and among all anchors."""
    rng = np.random.default_rng(seed)
    sample = torch.from_numpy(anchor_rows[rng.choice(len(anchor_rows), 3000, replace=False)])
    sims = sample @ sample.T
    upper = sims[torch.triu(torch.ones_like(sims, dtype=torch.bool), diagonal=1)]
    q = torch.from_numpy(queries[:64])
    kth_sample = torch.topk(q @ sample.T, K, dim=1).values[:, -1]
    kth_all = torch.cat(
        [
            torch.topk(q @ torch.from_numpy(anchor_rows[s : s + 200_000]).T, K, dim=1).values
            for s in range(0, len(anchor_rows), 200_000)
        ],
        dim=1,
    )
    kth_all = torch.topk(kth_all, K, dim=1).values[:, -1]
    return {
        "pairwise_mean": float(upper.mean()),
        "pairwise_std": float(upper.std()),
        "kth_of_3000": float(kth_sample.mean()),
        "kth_of_all": float(kth_all.mean()),
    }


if __name__ == "__main__":
    queries = real_queries()
    real = real_anchors()
    print("real", distribution(real, queries))
    print("mixed", distribution(mixed(real, 20_000, seed=5), queries))
