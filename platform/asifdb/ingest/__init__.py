"""Ingestion, pure part: read a source (webdataset, files, JSONL, class folders) into items and
validate each into a ValidItem or a Rejected with a stable reason. The job side streams these."""

from asifdb.ingest.items import RejectCode, RejectReason, SourceItem
from asifdb.ingest.sources import (
    Source,
    SourceError,
    SourceKind,
    count_items,
    iter_items,
    open_source,
)
from asifdb.ingest.validate import (
    DEFAULT_LIMITS,
    Limits,
    Rejected,
    ValidItem,
    normalise_caption,
    validate,
)

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "RejectCode",
    "RejectReason",
    "Rejected",
    "Source",
    "SourceError",
    "SourceItem",
    "SourceKind",
    "ValidItem",
    "count_items",
    "iter_items",
    "normalise_caption",
    "open_source",
    "validate",
]
