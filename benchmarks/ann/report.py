"""Markdown tables of bench_ann.py's JSON results, as pasted into docs/benchmarks-ann.md.

Usage: python benchmarks/ann/report.py benchmarks/ann/results/100k.json [...]
"""

import json
import sys
from pathlib import Path

_COLUMNS = [
    ("mode", "iterative scan"),
    ("ef_search", "ef_search"),
    ("overfetch", "rows read / k"),
    ("recall_at_k", "recall@800"),
    ("min_recall", "worst query"),
    ("results_mean", "rows back (mean)"),
    ("top1_agreement", "top-1 agreement"),
    ("top1_accuracy", "top-1 accuracy"),
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("revoked_returned", "revoked returned"),
]


def _table(sweep: dict) -> str:
    rows = sweep["rows"]
    columns = [(key, title) for key, title in _COLUMNS if any(key in row for row in rows)]
    lines = [
        "| " + " | ".join(title for _, title in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(key, 1.0)) for key, _ in columns) + " |")
    if "exact_top1_accuracy" not in sweep:
        return "\n".join(lines) + "\n"
    exact = (
        f"exact top-1 accuracy {sweep['exact_top1_accuracy']}; exact mean cosine at rank "
        f"1 / 100 / 800: {' / '.join(map(str, sweep['exact_mean_sim_at_rank_1_100_800']))}"
    )
    return "\n".join(lines) + "\n\n" + exact + "\n"


def main() -> None:
    for path in map(Path, sys.argv[1:]):
        result = json.loads(path.read_text())
        print(f"## {path.name}: {result['anchors']:,} anchors, {result['queries']} queries\n")
        if "note" in result:
            print(f"note: {result['note']}\n")
        if "load" in result:
            print(f"load: {result['load']}\n")
        print(f"exact numpy float32: {result['exact_numpy']}\n")
        if "exact_engine" in result:
            print(f"exact engine (ExactTopK): {result['exact_engine']}\n")
        if "hnsw" not in result:
            continue
        print(f"batched HNSW: {result['batched']}\n")
        print(
            f"load average (1/5/15 min) at start {result['load_average_at_start']}, "
            f"at end {result['load_average_at_end']}\n"
        )
        print("### all pairs usable\n")
        print(_table(result["hnsw"]))
        print("### 10 % of pairs revoked (one licence of ten)\n")
        print(_table(result["hnsw_revoked_10pct"]))


if __name__ == "__main__":
    main()
