"""Top-1 agreement with float32 of a bfloat16 scan and of bfloat16 anchors, on real queries.

Anchors: the first 10,000 Tiny-ImageNet pairs; queries: 10 validation images of each of the
200 classes, captions "a photo of a {}." and "a close-up photo of the {}.". Embeddings are
cached in ~/.cache/asifdb-bench (encoding takes minutes the first time).

    .venv/bin/python benchmarks/engine/bench_agreement.py
"""

import time
from pathlib import Path

import numpy as np
import torch
from real_data import cached

from asifdb.engine import ExactTopK, classify, relative_representation

CONFIGS = [
    ("float32", torch.float32, None),
    ("float32, bfloat16 scan", torch.float32, torch.bfloat16),
    ("bfloat16 anchors", torch.bfloat16, None),
]
CACHE = Path.home() / ".cache" / "asifdb-bench" / "real_10k_2000.npz"


def main() -> None:
    t = time.perf_counter()
    data = cached(CACHE, n_pairs=10_000, classes=200, per_class=10)
    print(
        f"embeddings ready in {time.perf_counter() - t:.0f} s: "
        f"{len(data['anchor_image'])} pairs, {len(data['query_image'])} queries"
    )
    n_classes, n_templates = len(data["class_names"]), int(data["n_templates"])
    results = {}
    for name, dtype, scan_dtype in CONFIGS:
        image_index = ExactTopK(data["anchor_image"], dtype=dtype, scan_dtype=scan_dtype)
        text_index = ExactTopK(data["anchor_text"], dtype=dtype, scan_dtype=scan_dtype)
        image_rep = relative_representation(data["query_image"], image_index, k=800, p=8)
        caption_rep = relative_representation(data["caption_text"], text_index, k=800, p=8)
        results[name] = (
            image_rep,
            classify(image_rep, caption_rep, n_classes, n_templates),
            classify(image_rep, caption_rep, n_classes, n_templates, aggregation="mean"),
        )
    full, scan, half = (results[name] for name, _, _ in CONFIGS)
    same = all(
        np.array_equal(getattr(full[0], f), getattr(scan[0], f)) for f in ("indices", "values")
    )
    scores_same = np.array_equal(full[1].caption_scores, scan[1].caption_scores)
    pairs = zip(full[0].indices, half[0].indices, strict=True)
    overlap = np.mean([len(np.intersect1d(a, b)) / len(a) for a, b in pairs])
    labels = data["query_label"]
    print("| storage | aggregation | accuracy | top-1 agreement with float32 |")
    print("| --- | --- | --- | --- |")
    for name, (_, by_max, by_mean) in results.items():
        for aggregation, result, reference in (
            ("max", by_max, full[1]),
            ("mean", by_mean, full[2]),
        ):
            agreement = np.mean(result.labels == reference.labels)
            accuracy = np.mean(result.labels == labels)
            print(f"| {name} | {aggregation} | {accuracy:.2%} | {agreement:.2%} |")
    print(
        f"bfloat16 scan vs float32: image representations bit-identical: {same}, "
        f"class scores bit-identical: {scores_same}"
    )
    print(f"image top-800 sets, bfloat16 anchors vs float32: {overlap:.2%} of anchors in common")


if __name__ == "__main__":
    main()
