"""The ASIF engine: pure numpy/torch math, no database, no encoders, no web. Arrays in, arrays out.

Relative representations over exact chunked top-k (or any `TopK`), scores, zero-shot
classification, explanations that sum to the score, and caption representations kept exact
while anchor pairs come and go.
"""

from asifdb.engine.classify import (
    Aggregation,
    Classification,
    captions_for,
    class_scores,
    classify,
)
from asifdb.engine.embeddings import normalise, unit_row_chunks
from asifdb.engine.explain import Contribution, explain
from asifdb.engine.live import LiveCaptionReps
from asifdb.engine.representation import (
    SparseRep,
    from_neighbours,
    reindex,
    relative_representation,
    top_k,
)
from asifdb.engine.scoring import scores, sparse_scores
from asifdb.engine.topk import STORAGE_DTYPES, ExactTopK, TopK

__all__ = [
    "STORAGE_DTYPES",
    "Aggregation",
    "Classification",
    "Contribution",
    "ExactTopK",
    "LiveCaptionReps",
    "SparseRep",
    "TopK",
    "captions_for",
    "class_scores",
    "classify",
    "explain",
    "from_neighbours",
    "normalise",
    "reindex",
    "relative_representation",
    "scores",
    "sparse_scores",
    "top_k",
    "unit_row_chunks",
]
