"""What sharding the exact query path buys: one shard's scan cost against its anchors, the
coordinator's merge of S x k candidates, the bytes a shard sends, memory per shard, and the
latency and throughput of S shards modelled from those, against one machine (docs/sharding.md).

Anchors: real-distribution (real_distribution.py: 20,000 real EfficientNet-Lite0 embeddings,
then mixes of two); queries: real CIFAR-10 test images. Prints a summary; writes JSON.

    cd benchmarks/engine && flock /tmp/asifdb-bench.lock ../../.venv/bin/python bench_shards.py \\
        --json results/shards.json
"""

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import machine
import numpy as np
import real_distribution

from asifdb.engine import ExactTopK
from asifdb.engine.shards import ShardAnswer, merge_top_k, search_shards

K = 800
ID_BYTES, SIM_BYTES = 8, 4
# Memory per image anchor as anchors/live.py holds it with EXACT_SCAN=auto on an AMX CPU:
# float32 rows, a bfloat16 scan copy, an int8 scan copy with its float32 scale, the id, the
# usable flag (the "9 GB per million 1280-d anchors" of today).
IMAGE_BYTES_PER_DIM = 4 + 2 + 1
IMAGE_BYTES_FIXED = 4 + 8 + 1
# Modelling assumptions (not measured here): one network round trip inside a rack and the
# coordinator's link; each shard's answer crosses it once.
RTT_S = 200e-6
LINK_BYTES_PER_S = 10e9 / 8


def cpu() -> dict:
    model = next(
        line.split(":", 1)[1].strip()
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
        if line.startswith("Model name")
    )
    with open("/proc/cpuinfo") as f:
        flags = next(line.split(":", 1)[1].split() for line in f if line.startswith("flags"))
    return {
        "model_name": model,
        "simd": sorted(f for f in flags if f.startswith(("avx512", "amx"))),
        "cores": os.cpu_count(),
        "describe": machine.describe(),
    }


def scan_cost(anchors: np.ndarray, queries: np.ndarray, n: int, batch: int) -> dict:
    """One shard holding n anchors: one query (median over 3 different ones) and a batch."""
    index = ExactTopK.of_unit_rows(anchors[:n], ids=np.arange(n, dtype=np.int64))
    index.search(queries[:1], K)
    one = []
    for i in range(3):
        start = time.perf_counter()
        index.search(queries[1 + i : 2 + i], K)
        one.append(time.perf_counter() - start)
    start = time.perf_counter()
    index.search(queries[:batch], K)
    batch_s = time.perf_counter() - start
    return {
        "anchors": n,
        "one_query_s": statistics.median(one),
        "batch": batch,
        "batch_s": batch_s,
        "batch_qps": batch / batch_s,
        "index_bytes_float32": index.nbytes,
    }


def merge_cost(s: int, n_queries: int, rng: np.random.Generator) -> float:
    """Median seconds of merging s shards' full top k for n_queries queries (5 runs)."""
    answers = []
    for shard in range(s):
        sims = -np.sort(-rng.normal(0.45, 0.04, (n_queries, K)).astype(np.float32), axis=1)
        keys = rng.integers(0, 1 << 40, (n_queries, K)) * s + shard  # hash-distributed ids
        answers.append(ShardAnswer(3, keys, sims))
    merge_top_k(answers, K)
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        merge_top_k(answers, K)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def cap_loss(anchors: np.ndarray, queries: np.ndarray, s: int) -> dict:
    """Share of the true top k a k / s per-shard cap loses, shards by id hash and by id range
    (consecutive ids: the order the pairs were ingested in), on the real anchors."""
    n = len(anchors)
    ids = np.arange(n, dtype=np.int64)
    truth = ExactTopK.of_unit_rows(anchors, ids=ids).search(queries, K)[0]
    out = {}
    for name, shard_of in (("hash", ids % s), ("range", ids * s // n)):
        held = np.stack([np.sum(shard_of[truth] == i, axis=1) for i in range(s)], axis=1)
        kept = np.minimum(held, K // s).sum(axis=1)
        out[name] = {
            "lost_mean": float(1 - kept.mean() / K),
            "lost_max": float(1 - kept.min() / K),
            "most_on_one_shard_mean": float(held.max(axis=1).mean() / K),
        }
    return out


def check_merge(anchors: np.ndarray, queries: np.ndarray, s: int) -> bool:
    """Whether s hash shards, merged, return the single index's keys and values exactly."""
    ids = np.arange(len(anchors), dtype=np.int64)
    shards = [
        ExactTopK.of_unit_rows(np.ascontiguousarray(anchors[ids % s == i]), ids=ids[ids % s == i])
        for i in range(s)
    ]
    keys, sims = search_shards(shards, queries, K, version=1)
    want_keys, want_sims = ExactTopK.of_unit_rows(anchors, ids=ids).search(queries, K)
    return bool(np.array_equal(keys, want_keys) and np.array_equal(sims, want_sims))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 250_000, 500_000, 10**6])
    parser.add_argument("--shards", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    began = time.perf_counter()
    info = {"cpu": cpu(), "k": K, "load_start": os.getloadavg()[0]}
    print(info["cpu"], flush=True)
    queries = real_distribution.real_queries()
    anchors = real_distribution.anchors(max(args.sizes))
    d = anchors.shape[1]
    info["distribution"] = {
        str(n): real_distribution.distribution(anchors[:n], queries)
        for n in (args.sizes[0], max(args.sizes))
    }
    print("distribution", info["distribution"], flush=True)

    real = anchors[:20_000]
    info["merge_exact_100k_s4"] = check_merge(anchors[:100_000], queries[:16], 4)
    info["cap_loss_real_20k"] = {str(s): cap_loss(real, queries[:128], s) for s in (4, 8)}
    print("merge exact:", info["merge_exact_100k_s4"], "cap loss", info["cap_loss_real_20k"])

    scans = []
    for n in args.sizes:
        scans.append(scan_cost(anchors, queries, n, args.batch))
        print(scans[-1], flush=True)
    info["scan"] = scans
    x = np.array([r["anchors"] for r in scans], dtype=np.float64)
    fit = {}
    for key in ("one_query_s", "batch_s"):
        slope, intercept = np.polyfit(x, [r[key] for r in scans], 1)
        fit[key] = {"per_anchor_s": float(slope), "fixed_s": float(intercept)}
    info["scan_fit"] = fit

    rng = np.random.default_rng(0)
    merges = {
        str(s): {"one_query_s": merge_cost(s, 1, rng), "batch_s": merge_cost(s, args.batch, rng)}
        for s in args.shards
    }
    info["merge"] = merges
    print("merge", merges, flush=True)
    shard_bytes = K * (ID_BYTES + SIM_BYTES)
    info["bytes_per_shard_per_query_per_modality"] = shard_bytes

    def scan(key: str, n: float) -> float:
        return max(fit[key]["per_anchor_s"] * n + fit[key]["fixed_s"], 1e-6)

    per_anchor = IMAGE_BYTES_PER_DIM * d + IMAGE_BYTES_FIXED
    info["image_bytes_per_anchor"] = per_anchor
    model = []
    for n in (10**6, 10**7, 10**8):
        one = {"one_query_s": scan("one_query_s", n), "qps": args.batch / scan("batch_s", n)}
        row = {
            "anchors": n,
            "one_machine": one | {"memory_gb": n * per_anchor / 1e9},
            "sharded": [],
        }
        for s in args.shards:
            network = RTT_S + s * shard_bytes / LINK_BYTES_PER_S
            latency = scan("one_query_s", n / s) + network + merges[str(s)]["one_query_s"]
            node_qps = args.batch / scan("batch_s", n / s)
            merge_qps = args.batch / merges[str(s)]["batch_s"]
            link_qps = LINK_BYTES_PER_S / (s * shard_bytes)
            row["sharded"].append(
                {
                    "shards": s,
                    "latency_s": latency,
                    "latency_speedup": one["one_query_s"] / latency,
                    "qps": min(node_qps, merge_qps, link_qps),
                    "bound_by": ["shard scan", "merge", "link"][
                        int(np.argmin([node_qps, merge_qps, link_qps]))
                    ],
                    "memory_gb_per_shard": n / s * per_anchor / 1e9,
                }
            )
        model.append(row)
    info["model"] = model
    info["assumptions"] = {"rtt_s": RTT_S, "link_bytes_per_s": LINK_BYTES_PER_S}
    info["load_end"] = os.getloadavg()[0]
    info["wall_s"] = time.perf_counter() - began
    for row in model:
        print(
            f"{row['anchors']:,}: one machine {row['one_machine']['one_query_s'] * 1e3:.0f} ms, "
            f"{row['one_machine']['qps']:.1f} q/s, {row['one_machine']['memory_gb']:.0f} GB"
        )
        for r in row["sharded"]:
            print(
                f"   S={r['shards']:>2}: {r['latency_s'] * 1e3:8.1f} ms "
                f"({r['latency_speedup']:.1f}x)"
                f" {r['qps']:9.1f} q/s ({r['bound_by']}), {r['memory_gb_per_shard']:.2f} GB/shard"
            )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(info, indent=2) + "\n")
    print(f"wall {info['wall_s']:.0f} s, load {info['load_start']:.2f} -> {info['load_end']:.2f}")


if __name__ == "__main__":
    main()
