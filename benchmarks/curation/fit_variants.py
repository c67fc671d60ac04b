"""Which score finds swapped captions best? ROC AUC of candidate mismatch scores, dense.

Reads the 20,000 anchors' embeddings from the results' anchors database (read only; built by
`platform/asifdb/experiments/anchors_db.py`), swaps the text embeddings of 1,000 random pairs (500
swaps, as `corruption.py` does through the platform) and ranks every pair by each score, lowest
first. Everything is leave-one-out (a pair never votes for itself) and dense in torch, so the
variants are compared on exactly the same corruption. About 20 GB of memory at 20,000 pairs.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.curation.fit_variants
"""

import numpy as np
import torch
from scipy.stats import rankdata
from sqlalchemy import text

from asifdb.anchors import store
from asifdb.db.session import make_engine, session_factory
from asifdb.experiments import anchors_db

SWAPPED = 1000
SAMPLE = 3000  # images (captions) each caption (image) is compared with, for the z-scores
ANCHORS = "anchors_55beed397132"  # the default encoders' anchors database (see anchors_db)


def main() -> None:
    image, caption, labels = _swapped_collection(seed=0)
    n = len(image)

    def auc(score: np.ndarray) -> float:
        """Probability that a swapped pair scores lower than a clean one."""
        ranks = rankdata(score)
        swapped, clean = labels.sum(), (~labels).sum()
        return 1 - (ranks[labels].sum() - swapped * (swapped + 1) / 2) / (swapped * clean)

    rng = np.random.default_rng(1)
    for k in (800, 1600):
        di, dt = _dense_rep(image, k, 8.0), _dense_rep(caption, k, 8.0)
        own = (di * dt).sum(1)
        sample = torch.from_numpy(rng.choice(n, SAMPLE, replace=False))
        column = di[sample] @ dt.T  # sampled images against every caption
        row = di @ dt[sample].T  # every image against sampled captions
        column_z = ((own - column.mean(0)) / column.std(0)).numpy()
        row_z = ((own - row.mean(1)) / row.std(1)).numpy()
        column_rank = (column > own[None, :]).float().mean(0).numpy()
        print(
            f"k={k}, p=8: own score {auc(own.numpy()):.4f} | caption-side z {auc(column_z):.4f}"
            f" | image-side z {auc(row_z):.4f} | both z {auc(column_z + row_z):.4f}"
            f" | caption-side rank {auc(-column_rank):.4f}",
            flush=True,
        )
        del di, dt, column, row
    for k in (10, 50):
        print(
            f"k={k} nearest, text agreement: image neighbours' captions vs own caption "
            f"{auc(_agreement(image, caption, k)):.4f} | caption neighbours' images vs own "
            f"image {auc(_agreement(caption, image, k)):.4f}",
            flush=True,
        )


def _swapped_collection(seed: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    url = anchors_db._database_url(anchors_db.server_url(), ANCHORS)
    with anchors_db._exclusive(ANCHORS):
        engine = make_engine(url)
        with session_factory(engine)() as session:
            session.execute(text("SET TRANSACTION READ ONLY"))
            anchors = store.load(session)
        engine.dispose()
    image, caption = anchors.image.copy(), anchors.text.copy()
    chosen = np.random.default_rng(seed).choice(len(image), SWAPPED, replace=False)
    a, b = chosen[: SWAPPED // 2], chosen[SWAPPED // 2 :]
    caption[a], caption[b] = anchors.text[b], anchors.text[a]
    labels = np.zeros(len(image), dtype=bool)
    labels[chosen] = True
    return torch.from_numpy(image), torch.from_numpy(caption), labels


def _dense_rep(x: torch.Tensor, k: int, p: float) -> torch.Tensor:
    """Leave-one-out relative representations (n, n) of the anchors against themselves."""
    sims = x @ x.T
    sims.fill_diagonal_(-2.0)
    values, indices = sims.topk(k, dim=1)
    del sims
    weights = values**p
    weights /= weights.norm(dim=1, keepdim=True)
    return torch.zeros(len(x), len(x)).scatter_(1, indices, weights)


def _agreement(side: torch.Tensor, other: torch.Tensor, k: int) -> np.ndarray:
    """Weighted mean similarity, in the other modality, of each pair to its k nearest pairs
    on this side (leave-one-out)."""
    sims = side @ side.T
    sims.fill_diagonal_(-2.0)
    values, indices = sims.topk(k, dim=1)
    del sims
    weights = values**8
    weights /= weights.sum(1, keepdim=True)
    out = np.empty(len(side))
    for start in range(0, len(side), 1000):
        near = other[indices[start : start + 1000]]  # (b, k, d)
        agree = (near * other[start : start + 1000, None, :]).sum(-1)
        out[start : start + 1000] = (weights[start : start + 1000] * agree).sum(1).numpy()
    return out


if __name__ == "__main__":
    main()
