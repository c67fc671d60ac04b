"""Accuracy of many ASIF models (anchor subsets, k, p) by the engine, on the platform's anchors.

Scaling and the k x p grid evaluate about a hundred models each: `services.classify` would redo
the same top-k scans for every one, so these find each query's neighbours once and slice them.
"""

from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from asifdb import engine
from asifdb.anchors import store
from asifdb.experiments.datasets import Embedded

# Image rows scored per dense block: a (rows, anchors) float32 block stays under ~100 MB.
_ROWS_PER_BLOCK = 1024


@dataclass(frozen=True)
class Anchors:
    """Usable pairs as the platform's live model sees them: ids and unit embeddings."""

    ids: np.ndarray  # (N,) int64, ascending (the order pairs were ingested in)
    image: np.ndarray  # (N, d_image) float32
    text: np.ndarray  # (N, d_text) float32

    def subset(self, rows: np.ndarray) -> "Anchors":
        rows = np.sort(rows)
        return Anchors(self.ids[rows], self.image[rows], self.text[rows])


def load_anchors(session: Session) -> Anchors:
    """The usable anchors at the session's snapshot (the same rows `classify` scans)."""
    loaded = store.load(session)
    return Anchors(loaded.ids, loaded.image, loaded.text)


class Sweep:
    """Each test image's and prompt's top-`k_max` anchors, found once; accuracy at any k, p."""

    def __init__(self, data: Embedded, anchors: Anchors, k_max: int) -> None:
        self.data = data
        self.n_anchors = len(anchors.ids)
        self._image = engine.top_k(data.images, anchors.image, k_max)
        self._prompt = engine.top_k(data.prompts, anchors.text, k_max)

    def class_scores(self, k: int, p: float, aggregation: engine.Aggregation = "max") -> np.ndarray:
        """(n_images, n_classes) float32 ASIF class scores with k anchors kept and exponent p."""
        image_rep = engine.from_neighbours(
            self._image[0][:, :k], self._image[1][:, :k], p, self.n_anchors
        )
        prompt_rep = engine.from_neighbours(
            self._prompt[0][:, :k], self._prompt[1][:, :k], p, self.n_anchors
        )
        scores = _dense_scores(image_rep, prompt_rep.dense())
        return engine.class_scores(
            scores, len(self.data.classes), self.data.n_templates, aggregation
        )


def _dense_scores(image_rep: engine.SparseRep, prompts: np.ndarray) -> np.ndarray:
    """Image rows dotted with dense prompt rows: the engine's `sparse_scores`, summed in
    float32 (a sparse join costs k^2 per pair of rows, and the grid goes to k = 3200)."""
    n, width = image_rep.indices.shape
    out = np.empty((n, len(prompts)), dtype=np.float32)
    for start in range(0, n, _ROWS_PER_BLOCK):
        idx = image_rep.indices[start : start + _ROWS_PER_BLOCK]
        block = np.zeros((len(idx), prompts.shape[1]), dtype=np.float32)
        rows, cols = np.nonzero(idx >= 0)
        block[rows, idx[rows, cols]] = image_rep.values[start : start + _ROWS_PER_BLOCK][rows, cols]
        out[start : start + len(idx)] = block @ prompts.T
    return out


def nearest_caption_scores(
    data: Embedded, anchors: Anchors, aggregation: engine.Aggregation = "max"
) -> np.ndarray:
    """The 1-NN baseline: class scores are the prompts' cosines with the caption of the single
    anchor whose image is nearest the test image. (n_images, n_classes) float32."""
    nearest, _ = engine.top_k(data.images, anchors.image, 1)
    captions = anchors.text[nearest[:, 0]]
    cosines = captions @ data.prompts.T
    return engine.class_scores(cosines, len(data.classes), data.n_templates, aggregation)


def accuracy(class_scores: np.ndarray, labels: np.ndarray, top: int = 1) -> float:
    """Share of rows whose true label is among the `top` highest scores (ties: first class)."""
    ranked = np.argsort(-class_scores, axis=1, kind="stable")[:, :top]
    return float(np.mean(np.any(ranked == labels[:, None], axis=1)))
