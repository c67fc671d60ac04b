"""How far can a mismatch score get on the swapped-caption test? Label-free scores against a
classifier trained on the true classes (an upper bound no label-free score should beat).

Same corruption as `fit_variants.py` (1,000 of the 20,000 default pairs, captions swapped in
pairs, seed 0), every score out of sample: ASIF leave-one-out (caption-side z, k = 1,600),
a ridge map between the modalities (5 folds), a linear probe from images to clusters of the
captions (k-means, 5 folds: "confident learning" with the collection's own noisy labels),
rank averages of those, and the same probe trained on the images' true WordNet classes
(metadata the platform does not have: the ceiling for these encoders).

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.curation.ceiling

Embeddings come from the platform's default encoders, cached in /tmp (about 3 min to make).
"""

from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata

from asifdb.encoders import get_encoder
from asifdb.ingest import ValidItem, iter_items, open_source, validate

SOURCE = Path(__file__).resolve().parents[3] / "shared" / "data" / "tiny-imagenet-pairs-wds"
CACHE = Path("/tmp/asifdb-curation-embeddings.npz")
SWAPPED, SAMPLE, FOLDS = 1000, 3000, 5


def embeddings() -> dict[str, np.ndarray]:
    if not CACHE.exists():
        items = [
            v
            for v in map(validate, iter_items(open_source(SOURCE, roots=[SOURCE.parent])))
            if isinstance(v, ValidItem)
        ]
        image = get_encoder("tf_efficientnet_lite0", cache_dir=CACHE.parent / "asifdb-encoders")
        text = get_encoder("all-MiniLM-L6-v2")
        batches = range(0, len(items), 256)
        np.savez(
            CACHE,
            image=np.concatenate(
                [image.embed_batch([v.for_encoder for v in items[s : s + 256]]) for s in batches]
            ),
            text=np.concatenate(
                [text.embed_batch([v.caption for v in items[s : s + 256]]) for s in batches]
            ),
            wnid=np.array([v.metadata.get("wnid", "") for v in items]),
        )
    return dict(np.load(CACHE))


def main() -> None:
    data = embeddings()
    image, text0 = torch.from_numpy(data["image"]), torch.from_numpy(data["text"])
    n = len(image)
    chosen = np.random.default_rng(0).choice(n, SWAPPED, replace=False)
    a, b = chosen[: SWAPPED // 2], chosen[SWAPPED // 2 :]
    text = text0.clone()
    text[a], text[b] = text0[b], text0[a]
    swapped = np.zeros(n, dtype=bool)
    swapped[chosen] = True
    classes = np.unique(data["wnid"], return_inverse=True)[1]
    caption_class = classes.copy()
    caption_class[a], caption_class[b] = classes[b], classes[a]
    sample = torch.from_numpy(np.random.default_rng(1).choice(n, SAMPLE, replace=False))
    folds = torch.from_numpy(np.random.default_rng(2).integers(0, FOLDS, n))

    def auc(score: np.ndarray) -> float:
        """Probability that a swapped pair scores lower than a clean one."""
        ranks = rankdata(score)
        s, c = swapped.sum(), (~swapped).sum()
        return 1 - (ranks[swapped].sum() - s * (s + 1) / 2) / (s * c)

    scores = {
        "ASIF caption-side z (k = 1,600, p = 8)": _asif_caption_z(image, text, sample, 1600),
        "ridge map, both directions (z)": _ridge(image, text, sample, folds),
        "probe: image -> caption cluster (K = 500)": _probe(image, _kmeans(text, 500), folds),
    }
    names = list(scores)
    scores["rank average: ASIF + probe"] = rankdata(scores[names[0]]) + rankdata(scores[names[2]])
    scores["rank average: ASIF + ridge + probe"] = sum(rankdata(s) for s in scores.values())
    truth = torch.from_numpy(classes)
    scores["ceiling: probe on the TRUE classes"] = _probe(image, truth, folds, caption_class)
    for name, score in scores.items():
        print(f"{name}: ROC AUC {auc(score):.4f}", flush=True)


def _asif_caption_z(image: torch.Tensor, text: torch.Tensor, sample: torch.Tensor, k: int):
    di, dt = _dense_rep(image, k), _dense_rep(text, k)
    own = (di * dt).sum(1)
    column = di[sample] @ dt.T
    return ((own - column.mean(0)) / column.std(0)).numpy()


def _dense_rep(x: torch.Tensor, k: int, p: float = 8.0) -> torch.Tensor:
    sims = x @ x.T
    sims.fill_diagonal_(-2.0)  # leave one out
    values, indices = sims.topk(k, dim=1)
    del sims
    weights = values.clamp(min=0) ** p
    weights /= weights.norm(dim=1, keepdim=True)
    return torch.zeros(len(x), len(x)).scatter_(1, indices, weights)


def _ridge(image: torch.Tensor, text: torch.Tensor, sample: torch.Tensor, folds: torch.Tensor):
    x, y = image.double(), text.double()
    forward, backward = torch.zeros_like(y), torch.zeros_like(x)
    for f in range(FOLDS):
        train, test = folds != f, folds == f
        forward[test] = x[test] @ _solve(x[train], y[train])
        backward[test] = y[test] @ _solve(y[train], x[train])
    return _two_sided_z(forward, y, sample) + _two_sided_z(backward, x, sample)


def _solve(x: torch.Tensor, y: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    return torch.linalg.solve(x.T @ x + lam * torch.eye(x.shape[1], dtype=x.dtype), x.T @ y)


def _two_sided_z(predicted: torch.Tensor, target: torch.Tensor, sample: torch.Tensor):
    p = predicted / predicted.norm(dim=1, keepdim=True)
    own = (p * target).sum(1)
    column, row = p[sample] @ target.T, p @ target[sample].T
    z = (own - column.mean(0)) / column.std(0) + (own - row.mean(1)) / row.std(1)
    return z.numpy()


def _kmeans(x: torch.Tensor, k: int, iterations: int = 40) -> torch.Tensor:
    """Spherical k-means (k-means++ start): each row's cluster."""
    generator = torch.Generator().manual_seed(0)
    centres = x[torch.randperm(len(x), generator=generator)[:1]]
    for _ in range(k - 1):
        distance = (1 - x @ centres.T).clamp(min=0).min(1).values
        pick = torch.multinomial(distance**2 + 1e-12, 1, generator=generator)
        centres = torch.cat([centres, x[pick]])
    for _ in range(iterations):
        label = (x @ centres.T).argmax(1)
        centres = torch.zeros(k, x.shape[1]).index_add_(0, label, x)
        centres /= centres.norm(dim=1, keepdim=True).clamp(min=1e-9)
    return (x @ centres.T).argmax(1)


def _probe(image, label, folds, scored=None):  # noqa: ANN001, ANN202
    """Out-of-fold log-probability, from a linear softmax probe on the images trained on
    `label`, of each pair's `scored` class (default: its own label)."""
    torch.manual_seed(0)
    k = int(label.max()) + 1
    probs = torch.zeros(len(image), k)
    for f in range(FOLDS):
        train, test = folds != f, folds == f
        linear = _fit_probe(image[train] * 10, label[train], k)
        with torch.no_grad():
            probs[test] = torch.softmax(linear(image[test] * 10), 1)
    target = label.numpy() if scored is None else scored
    return np.log(probs.numpy()[np.arange(len(image)), target] + 1e-12)


def _fit_probe(x: torch.Tensor, y: torch.Tensor, k: int) -> torch.nn.Linear:
    linear = torch.nn.Linear(x.shape[1], k)
    optimiser = torch.optim.LBFGS(linear.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        penalty = 1e-4 * linear.weight.pow(2).sum()
        loss = torch.nn.functional.cross_entropy(linear(x), y) + penalty
        loss.backward()
        return loss

    optimiser.step(closure)
    return linear


if __name__ == "__main__":
    main()
