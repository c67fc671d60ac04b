"""Curation's cost as the collection grows, on synthetic unit embeddings (1280-d images, 384-d
captions): one fit batch and one near-duplicate batch at N anchors, the alignment (fit, projection)
and one fit batch in it; peak memory of the process.

    EXACT_SCAN=auto .venv/bin/python -m benchmarks.curation.scale 100000 1000000

The indexes are built as `services.curation` builds them (over the rows as they are, scanned
as EXACT_SCAN says batches are, default float32).

A full refresh is N / batch such batches; both are linear in N per batch (exact top-k scans every
anchor), so a full refresh is quadratic in N: the reason `refresh_fit` scores new pairs only.
"""

import json
import os
import resource
import sys
import time

import numpy as np

from asifdb import engine
from asifdb.anchors.live import scan_dtypes
from asifdb.engine import curation
from asifdb.services.curation import (
    DUPLICATE_NEIGHBOURS,
    DUPLICATE_THRESHOLD,
    FIT_BATCH,
    fit_alignment,
)


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def measure(n: int, k: int = 800, p: float = 8.0) -> dict:
    rng = np.random.default_rng(0)
    image, caption = _unit(rng, n, 1280), _unit(rng, n, 384)
    scan = scan_dtypes(os.environ.get("EXACT_SCAN", "float32"))[1]  # type: ignore[arg-type]
    image_index = engine.ExactTopK.of_unit_rows(image, ids=np.arange(n), scan_dtype=scan)
    caption_index = engine.ExactTopK.of_unit_rows(caption, ids=np.arange(n), scan_dtype=scan)
    members = rng.choice(n, FIT_BATCH, replace=False)
    started = time.perf_counter()
    image_rep = curation.leave_one_out(image_index, image[members], members, k, p, n)
    caption_rep = curation.leave_one_out(caption_index, caption[members], members, k, p, n)
    curation.fit(image_rep, caption_rep)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    own = np.arange(4096)
    curation.duplicate_edges(
        image_index, image[own], own, DUPLICATE_THRESHOLD, DUPLICATE_NEIGHBOURS
    )
    dup_seconds = time.perf_counter() - started
    started = time.perf_counter()
    alignment = fit_alignment(image, caption, seed=0)
    align_seconds = time.perf_counter() - started
    started = time.perf_counter()
    aligned = alignment.project(image, "image"), alignment.project(caption, "caption")
    project_seconds = time.perf_counter() - started
    indexes = [engine.ExactTopK.of_unit_rows(a, ids=np.arange(n), scan_dtype=scan) for a in aligned]
    started = time.perf_counter()
    curation.fit(
        *(
            curation.leave_one_out(i, a[members], members, k, p, n)
            for i, a in zip(indexes, aligned, strict=True)
        )
    )
    aligned_fit_seconds = time.perf_counter() - started
    return {
        "anchors": n,
        "scan": str(scan),
        "fit_batch_pairs": FIT_BATCH,
        "fit_batch_seconds": round(fit_seconds, 2),
        "full_fit_refresh_hours_extrapolated": round(fit_seconds * n / FIT_BATCH / 3600, 2),
        "duplicate_batch_pairs": 4096,
        "duplicate_batch_seconds": round(dup_seconds, 2),
        # The indexes share the rows (of_unit_rows): their nbytes include them.
        "anchor_bytes": int(image_index.nbytes + caption_index.nbytes),
        "align_seconds": round(align_seconds, 2),
        "project_seconds": round(project_seconds, 2),
        "aligned_fit_batch_seconds": round(aligned_fit_seconds, 2),
        "aligned_index_bytes": int(sum(i.nbytes for i in indexes)),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


if __name__ == "__main__":
    for n in [int(a) for a in sys.argv[1:]]:
        print(json.dumps(measure(n)), flush=True)
