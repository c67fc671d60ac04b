"""Mismatch list with and without the collection's alignment, through the engine functions
`services.curation.refresh_fit` calls, on the swapped-caption corruption of `ceiling.py`
(1,000 of the 20,000 default pairs, captions swapped in pairs) for several seeds; and, in each
space, the share of an image's 50 nearest other images that have its WordNet class (metadata
the platform does not use, read here to show what the alignment changes).

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.curation.alignment [--seeds 0 1 2]
        [--sizes 2000 4000 7000 10000] [--p 8 4] [--folds 5] [--purity]

`--sizes`: the same comparison on random subsets of that many pairs (5 % of them swapped,
seed = size), where the alignment is fitted on fewer pairs. `--p`: these p values in each
space instead of the platform's FIT_P. `--folds`: also out of fold (each fold scored in an
alignment fitted without it). `--purity`: the class purity of each space.

Embeddings come from `ceiling.embeddings` (the platform's default encoders, cached in /tmp).
"""

import argparse
import time

import numpy as np

from asifdb.engine import ExactTopK
from asifdb.services.curation import (
    FIT_BATCH,
    FIT_K,
    FIT_P,
    fit_alignment,
    fit_batches,
)
from benchmarks.curation.ceiling import SWAPPED, embeddings
from benchmarks.curation.corruption import auc


def swap(text: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Captions swapped between SWAPPED random pairs, and which pairs those are."""
    chosen = np.random.default_rng(seed).choice(len(text), SWAPPED, replace=False)
    a, b = chosen[: SWAPPED // 2], chosen[SWAPPED // 2 :]
    out = text.copy()
    out[a], out[b] = text[b], text[a]
    swapped = np.zeros(len(text), dtype=bool)
    swapped[chosen] = True
    return out, swapped


def fits(
    image: np.ndarray, caption: np.ndarray, p: float, folds: int | None = None
) -> dict[str, np.ndarray]:
    """fit and plain score of every pair, scored as refresh_fit does (shuffled batches, k =
    FIT_K) in the spaces given; with `folds`, out of fold: each fold in an alignment of the
    given rows fitted without it."""
    n = len(image)
    out = {"fit": np.empty(n), "score": np.empty(n)}
    everything = np.arange(n)
    spaces = [(everything, image, caption)]
    if folds is not None:
        parts = np.array_split(np.random.default_rng(0).permutation(n), folds)
        rests = (np.setdiff1d(everything, part) for part in parts)
        alignments = (fit_alignment(image[rest], caption[rest], seed=0) for rest in rests)
        spaces = (
            (part, a.project(image, "image"), a.project(caption, "caption"))
            for part, a in zip(parts, alignments, strict=True)
        )
    for targets, i, t in spaces:
        indexes = (ExactTopK.of_unit_rows(rows, ids=everything) for rows in (i, t))
        batches = fit_batches(*indexes, i, t, targets, k=FIT_K, p=p, batch=FIT_BATCH, seed=0)
        for part, _, fit in batches:
            out["fit"][part], out["score"][part] = fit.fit[: len(part)], fit.score[: len(part)]
    return out


def purity(rows: np.ndarray, classes: np.ndarray, neighbours: int = 50) -> float:
    """Share of each row's nearest other rows (cosine) that have its class."""
    keys, _ = ExactTopK.of_unit_rows(rows, ids=np.arange(len(rows))).search(rows, neighbours + 1)
    return float((classes[keys[:, 1:]] == classes[:, None]).mean())


def compare(
    label: str,
    image: np.ndarray,
    text: np.ndarray,
    swapped: np.ndarray,
    ps: list[float] | None,
    folds: int | None,
) -> None:
    """Mismatch figures in the encoders' spaces and in the alignment (fitted on the pairs it
    scores, as the platform does; or out of fold too), at each p of `ps` (None: the platform's
    FIT_P of each space); one line each, with the time it took."""
    n_swapped = int(swapped.sum())
    runs: list[tuple[str, bool, int | None]] = [("encoders' spaces", False, None)]
    runs += [("alignment", True, None)]
    if folds:
        runs += [(f"alignment out of fold ({folds} folds)", False, folds)]
    for name, in_sample, count in runs:
        for p in ps or [FIT_P[in_sample or count is not None]]:
            started = time.perf_counter()
            i, t = image, text
            if in_sample:
                alignment = fit_alignment(image, text, seed=0)
                i, t = alignment.project(image, "image"), alignment.project(text, "caption")
            scored = fits(i, t, p, count)
            seconds = time.perf_counter() - started
            figures = ", ".join(f"{k} AUC {auc(-v, swapped):.4f}" for k, v in scored.items())
            top = swapped[np.argsort(scored["fit"])[:n_swapped]].mean()
            print(
                f"{label}, {name}, p = {p:g}: {figures}, precision at {n_swapped} {top:.3f}, "
                f"{seconds:.0f} s",
                flush=True,
            )


def subsets(data: dict[str, np.ndarray], sizes: list[int], ps: list[float] | None) -> None:
    """The comparison on random subsets of the collection, 5 % of each swapped."""
    for n in sizes:
        rng = np.random.default_rng(n)
        rows = rng.choice(len(data["image"]), n, replace=False)
        image = np.ascontiguousarray(data["image"][rows], dtype=np.float32)
        text = np.ascontiguousarray(data["text"][rows], dtype=np.float32)
        chosen = rng.choice(n, n // 20 // 2 * 2, replace=False)
        a, b = chosen[: len(chosen) // 2], chosen[len(chosen) // 2 :]
        text[a], text[b] = text[b], text[a].copy()
        compare(f"{n} pairs", image, text, np.isin(np.arange(n), chosen), ps, None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--sizes", type=int, nargs="*", default=[])
    parser.add_argument("--p", type=float, nargs="*", help="p values (default: FIT_P's)")
    parser.add_argument("--folds", type=int, help="also out of fold, in this many alignments")
    parser.add_argument("--purity", action="store_true", help="image class purity per space")
    args = parser.parse_args()
    data = embeddings()
    subsets(data, args.sizes, args.p)
    image = np.ascontiguousarray(data["image"], dtype=np.float32)
    if args.purity:
        classes = np.unique(data["wnid"], return_inverse=True)[1]
        alignment = fit_alignment(image, data["text"], seed=0)
        for name, rows in (("encoders'", image), ("alignment", alignment.project(image, "image"))):
            print(
                f"{name} space: own class among an image's 50 nearest {purity(rows, classes):.3f}"
            )
    for seed in args.seeds:
        text, swapped = swap(np.ascontiguousarray(data["text"], dtype=np.float32), seed)
        compare(f"seed {seed}", image, text, swapped, args.p, args.folds)


if __name__ == "__main__":
    main()
