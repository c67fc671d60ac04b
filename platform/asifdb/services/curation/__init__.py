"""Curation use cases: find the pairs that mislead the model (mismatched captions, near-duplicate
images, pairs that hurt a labelled set) and act on them (mark, reject, restore, revoke).

Called by `asifdb curate`, `/v1/curation/...` and the Curate page. The math is engine/curation.py.
"""

# The features, one module each; their public names are the package's (`curation.refresh_fit`).
from asifdb.services.curation.duplicates import (
    DUPLICATE_NEIGHBOURS,
    DUPLICATE_THRESHOLD,
    duplicates,
    refresh_duplicates,
)
from asifdb.services.curation.fit import (
    ALIGN_PAIRS_PER_DIMENSION,
    ALIGN_RANK,
    ALIGN_SAMPLE,
    FIT_BATCH,
    FIT_K,
    FIT_P,
    MIXED_SPACES,
    SPACES,
    aligns,
    fit_alignment,
    fit_batches,
    fit_spaces,
    fit_status,
    mismatches,
    refresh_fit,
)
from asifdb.services.curation.listing import MAX_PAGE
from asifdb.services.curation.review import mark, reject, restore, reviews, revoke_licences, unmark
from asifdb.services.curation.value import WHAT_IF_COUNTS, pair_values

__all__ = [
    "ALIGN_PAIRS_PER_DIMENSION",
    "ALIGN_RANK",
    "ALIGN_SAMPLE",
    "DUPLICATE_NEIGHBOURS",
    "DUPLICATE_THRESHOLD",
    "FIT_BATCH",
    "FIT_K",
    "FIT_P",
    "MAX_PAGE",
    "MIXED_SPACES",
    "SPACES",
    "WHAT_IF_COUNTS",
    "aligns",
    "duplicates",
    "fit_alignment",
    "fit_batches",
    "fit_spaces",
    "fit_status",
    "mark",
    "mismatches",
    "pair_values",
    "refresh_duplicates",
    "refresh_fit",
    "reject",
    "restore",
    "reviews",
    "revoke_licences",
    "unmark",
]
