"""Mismatch list with and without the collection's alignment, through the engine functions
`services.curation.refresh_fit` calls, on the swapped-caption corruption of `ceiling.py`
(1,000 of the 20,000 default pairs, captions swapped in pairs) for several seeds; and, in each
space, the share of an image's 50 nearest other images that have its WordNet class (metadata
the platform does not use, read here to show what the alignment changes).

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.curation.alignment [--seeds 0 1 2]
        [--sizes 2000 4000 7000 10000]

`--sizes`: the same comparison on random subsets of that many pairs (5 % of them swapped,
seed = size), where the alignment is fitted on fewer pairs.

Embeddings come from `ceiling.embeddings` (the platform's default encoders, cached in /tmp).
"""

import argparse
import time

import numpy as np

from asifdb.engine import ExactTopK
from asifdb.engine import curation as math
from asifdb.services.curation import FIT_BATCH, fit_alignment
from benchmarks.curation.ceiling import SWAPPED, embeddings
from benchmarks.curation.corruption import auc

K, P = 800, 8.0


def swap(text: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Captions swapped between SWAPPED random pairs, and which pairs those are."""
    chosen = np.random.default_rng(seed).choice(len(text), SWAPPED, replace=False)
    a, b = chosen[: SWAPPED // 2], chosen[SWAPPED // 2 :]
    out = text.copy()
    out[a], out[b] = text[b], text[a]
    swapped = np.zeros(len(text), dtype=bool)
    swapped[chosen] = True
    return out, swapped


def fits(image: np.ndarray, caption: np.ndarray) -> dict[str, np.ndarray]:
    """fit and plain score of every pair, scored in shuffled batches as refresh_fit does."""
    n = len(image)
    image_index = ExactTopK.of_unit_rows(image, ids=np.arange(n))
    caption_index = ExactTopK.of_unit_rows(caption, ids=np.arange(n))
    out = {"fit": np.empty(n), "score": np.empty(n)}
    order = np.random.default_rng(0).permutation(n)
    for part in np.array_split(order, -(-n // FIT_BATCH)):
        fit = math.fit(
            math.leave_one_out(image_index, image[part], part, K, P, n),
            math.leave_one_out(caption_index, caption[part], part, K, P, n),
        )
        out["fit"][part], out["score"][part] = fit.fit, fit.score
    return out


def purity(rows: np.ndarray, classes: np.ndarray, neighbours: int = 50) -> float:
    """Share of each row's nearest other rows (cosine) that have its class."""
    keys, _ = ExactTopK.of_unit_rows(rows, ids=np.arange(len(rows))).search(rows, neighbours + 1)
    return float((classes[keys[:, 1:]] == classes[:, None]).mean())


def subsets(data: dict[str, np.ndarray], sizes: list[int]) -> None:
    """fit AUC in both spaces on random subsets of the collection, 5 % of each swapped."""
    for n in sizes:
        rng = np.random.default_rng(n)
        rows = rng.choice(len(data["image"]), n, replace=False)
        image = np.ascontiguousarray(data["image"][rows], dtype=np.float32)
        text = np.ascontiguousarray(data["text"][rows], dtype=np.float32)
        chosen = rng.choice(n, n // 20 // 2 * 2, replace=False)
        a, b = chosen[: len(chosen) // 2], chosen[len(chosen) // 2 :]
        text[a], text[b] = text[b], text[a].copy()
        swapped = np.isin(np.arange(n), chosen)
        alignment = fit_alignment(image, text, seed=0)
        raw = fits(image, text)["fit"]
        aligned = fits(alignment.project(image, "image"), alignment.project(text, "caption"))
        print(
            f"{n} pairs: fit AUC encoders' spaces {auc(-raw, swapped):.4f}, "
            f"alignment {auc(-aligned['fit'], swapped):.4f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--sizes", type=int, nargs="*", default=[])
    args = parser.parse_args()
    data = embeddings()
    subsets(data, args.sizes)
    image = np.ascontiguousarray(data["image"], dtype=np.float32)
    for seed in args.seeds:
        text, swapped = swap(np.ascontiguousarray(data["text"], dtype=np.float32), seed)
        started = time.perf_counter()
        alignment = fit_alignment(image, text, seed=0)
        spaces = {
            "encoders' spaces": (image, text),
            "alignment": (alignment.project(image, "image"), alignment.project(text, "caption")),
        }
        aligned_seconds = time.perf_counter() - started
        if seed == args.seeds[0]:
            classes = np.unique(data["wnid"], return_inverse=True)[1]
            for name, (i, _) in spaces.items():
                print(f"{name}: own class among an image's 50 nearest {purity(i, classes):.3f}")
        for name, (i, t) in spaces.items():
            started = time.perf_counter()
            scored = fits(i, t)
            seconds = time.perf_counter() - started
            figures = ", ".join(f"{k} AUC {auc(-v, swapped):.4f}" for k, v in scored.items())
            top = swapped[np.argsort(scored["fit"])[:SWAPPED]].mean()
            print(
                f"seed {seed}, {name}: {figures}, precision at {SWAPPED} {top:.3f}, "
                f"scoring {seconds:.0f} s"
                + (f" (+{aligned_seconds:.1f} s to align)" if name == "alignment" else ""),
                flush=True,
            )


if __name__ == "__main__":
    main()
