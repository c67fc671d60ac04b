"""Explanations: a score split into the contributions of the anchor pairs that carried it.

Services call `explain` for the predicted class and store the result as the prediction's evidence.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from asifdb.engine.representation import SparseRep


@dataclass(frozen=True)
class Contribution:
    """Anchor `anchor`'s share of a score: image weight x caption weight (summed over captions).

    image_similarity and caption_similarity are raw cosines of the query image and of the
    caption(s) to the anchor's image and caption (for several captions, their weighted mean
    over the captions that keep the anchor).
    """

    anchor: int
    image_similarity: float
    caption_similarity: float
    contribution: float


def explain(
    image_rep: SparseRep,
    row: int,
    caption_rep: SparseRep,
    caption_rows: Sequence[int],
    weights: Sequence[float] | None = None,
    *,
    top: int | None = None,
) -> list[Contribution]:
    """Per-anchor contributions to sum_j weights[j] * score(image `row`, caption_rows[j]).

    One caption (weights [1]) explains that caption's score, the `max` class score; a class's
    captions with the default equal weights explain the `mean` class score. Only anchors kept
    by both sides contribute; their contributions sum (in float64) to the score. Sorted by
    contribution, descending (ties: smaller anchor first); `top` keeps the first ones only.
    """
    if not len(caption_rows):
        raise ValueError("no caption to explain")
    if weights is None:
        weights = [1.0 / len(caption_rows)] * len(caption_rows)
    if len(weights) != len(caption_rows):
        raise ValueError(f"{len(weights)} weights for {len(caption_rows)} captions")
    image_keys = image_rep.indices[row]
    present = image_keys >= 0
    image_keys = image_keys[present]
    image_vals = image_rep.values[row][present].astype(np.float64)
    image_sims = image_rep.similarities[row][present]
    contribution = np.zeros(len(image_keys))
    caption_sim = np.zeros(len(image_keys))
    caption_weight = np.zeros(len(image_keys))
    for caption, weight in zip(caption_rows, weights, strict=True):
        keys = caption_rep.indices[caption]
        _, at_image, at_caption = np.intersect1d(
            image_keys, keys, assume_unique=True, return_indices=True
        )
        values = caption_rep.values[caption][at_caption].astype(np.float64)
        contribution[at_image] += weight * image_vals[at_image] * values
        caption_sim[at_image] += weight * caption_rep.similarities[caption][at_caption]
        caption_weight[at_image] += weight
    shared = np.flatnonzero(caption_weight > 0)
    order = shared[np.lexsort((image_keys[shared], -contribution[shared]))][:top]
    return [
        Contribution(
            int(image_keys[i]),
            float(image_sims[i]),
            float(caption_sim[i] / caption_weight[i]),
            float(contribution[i]),
        )
        for i in order
    ]
