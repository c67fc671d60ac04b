"""Text encoder speed on this CPU: the default encoder (all-MiniLM-L6-v2) on real captions of the
default collection, by batch size, with and without the allocator settings of `runtime_env()`.
Best and median of interleaved rounds (the machine is shared; the best round is the least
disturbed). Allocator settings are read at process start, so each runs in a child process.

    .venv/bin/python benchmarks/encoders/text_speed.py [--rounds 5] [--captions 2048]
"""

import argparse
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

from asifdb.encoders import get_encoder, runtime_env

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "tiny-imagenet-pairs-wds"
BATCH_SIZES = (32, 64, 128, 256)


def _captions(n: int) -> list[str]:
    out: list[str] = []
    with tarfile.open(DATA / "00000.tar") as tar:
        for member in tar:
            if member.name.endswith(".txt"):
                out.append(tar.extractfile(member).read().decode())  # type: ignore[union-attr]
                if len(out) == n:
                    break
    return out


def child(rounds: int, n: int) -> None:
    """Measure each batch size in this process; print markdown rows."""
    captions = _captions(n)
    encoders = {b: get_encoder("all-MiniLM-L6-v2", device="cpu", batch_size=b) for b in BATCH_SIZES}
    t = time.perf_counter()
    encoders[BATCH_SIZES[0]].embed_batch(captions[:8])
    print(f"- first call (loads the model): {time.perf_counter() - t:.1f} s", flush=True)
    reference = encoders[BATCH_SIZES[0]].embed_batch(captions)
    rates: dict[int, list[float]] = {b: [] for b in BATCH_SIZES}
    worst: dict[int, float] = {}
    for _ in range(rounds):
        for size, encoder in encoders.items():
            start = time.perf_counter()
            out = encoder.embed_batch(captions)
            rates[size].append(n / (time.perf_counter() - start))
            worst[size] = float(np.min(np.sum(out * reference, axis=1)))
    words = np.mean([len(c.split()) for c in captions])
    print(f"- {n} captions, {words:.1f} words on average", flush=True)
    print("\n| batch size | captions/s best | captions/s median | min cosine to batch 32 |")
    print("| ---: | ---: | ---: | ---: |")
    for size in BATCH_SIZES:
        print(
            f"| {size} | {max(rates[size]):.0f} | {np.median(rates[size]):.0f} | "
            f"{worst[size]:.7f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--captions", type=int, default=2048)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.rounds, args.captions)
        return
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    for allocator, env in (("runtime_env()", runtime_env()), ("glibc default", {})):
        print(f"\n### allocator: {allocator} {env}", flush=True)
        print(f"- load average before: {os.getloadavg()[0]:.2f}", flush=True)
        subprocess.run(
            [sys.executable, __file__, "--child", "--rounds", str(args.rounds)]
            + ["--captions", str(args.captions)],
            env={**base_env, **env, "HF_HUB_OFFLINE": "1"},
            check=True,
        )


if __name__ == "__main__":
    main()
