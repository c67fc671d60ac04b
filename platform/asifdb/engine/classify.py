"""Zero-shot classification: captions from class names x templates, a class per image.

Captions are class-major: caption c * n_templates + t is class c under template t.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from asifdb.engine.explain import Contribution, explain
from asifdb.engine.representation import SparseRep
from asifdb.engine.scoring import sparse_scores

Aggregation = Literal["max", "mean"]


def captions_for(class_names: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Class-major captions: every template (with a "{}" slot) filled with every class name."""
    if not class_names or not templates:
        raise ValueError("at least one class name and one template are needed")
    for template in templates:
        if "{}" not in template:
            raise ValueError(f"template {template!r} has no '{{}}' for the class name")
    return [template.format(name) for name in class_names for template in templates]


def class_scores(
    caption_scores: np.ndarray, n_classes: int, n_templates: int, aggregation: Aggregation = "max"
) -> np.ndarray:
    """(n, n_classes * n_templates) caption scores -> (n, n_classes) float32 class scores.

    `max`: a class scores as its best caption (the paper's reference code). `mean`: the
    average over its templates.
    """
    if caption_scores.shape[1] != n_classes * n_templates or n_classes < 1 or n_templates < 1:
        raise ValueError(
            f"{caption_scores.shape[1]} caption scores for {n_classes} classes x "
            f"{n_templates} templates"
        )
    grouped = caption_scores.reshape(len(caption_scores), n_classes, n_templates)
    if aggregation == "max":
        return grouped.max(axis=2)
    if aggregation == "mean":
        return grouped.mean(axis=2, dtype=np.float64).astype(np.float32)
    raise ValueError(f"unknown aggregation {aggregation!r}: use 'max' or 'mean'")


@dataclass(frozen=True)
class Classification:
    """Zero-shot labels of n images among C classes.

    labels: (n,) int64 class index; with `max` the class of the best caption over all (ties:
        the first caption, as the reference's argmax), with `mean` the best class (ties: first).
    class_scores: (n, C) float32. caption_scores: (n, C * T) float32.
    best_caption: (n,) int64, the best caption of the predicted class.
    aggregation: "max" or "mean", as used.
    explanations: per image, the top anchors behind its predicted class's score.
    """

    labels: np.ndarray
    class_scores: np.ndarray
    caption_scores: np.ndarray
    best_caption: np.ndarray
    aggregation: Aggregation
    explanations: list[list[Contribution]]


def classify(
    image_reps: SparseRep,
    caption_reps: SparseRep,
    n_classes: int,
    n_templates: int,
    *,
    aggregation: Aggregation = "max",
    top: int = 10,
) -> Classification:
    """Classify each image among `n_classes` whose captions (class-major, `n_templates` each)
    are `caption_reps`; both representations key anchors the same way."""
    caption_scores = sparse_scores(image_reps, caption_reps)
    per_class = class_scores(caption_scores, n_classes, n_templates, aggregation)
    grouped = caption_scores.reshape(len(caption_scores), n_classes, n_templates)
    if aggregation == "max":
        labels = np.argmax(caption_scores, axis=1) // n_templates
    else:
        labels = np.argmax(per_class, axis=1)
    within = np.argmax(grouped[np.arange(len(labels)), labels], axis=1)
    best_caption = labels * n_templates + within
    explanations = []
    for i, label in enumerate(labels):
        if aggregation == "max":
            rows, weights = [int(best_caption[i])], [1.0]
        else:
            rows = list(range(label * n_templates, (label + 1) * n_templates))
            weights = [1.0 / n_templates] * n_templates
        explanations.append(explain(image_reps, i, caption_reps, rows, weights, top=top))
    return Classification(
        labels.astype(np.int64),
        per_class,
        caption_scores,
        best_caption.astype(np.int64),
        aggregation,
        explanations,
    )
