"""The pair collection as the UI browses it: facets, a page of pairs, an image's neighbours."""

from datetime import datetime

from asifdb.schemas.base import Schema


class Facets(Schema):
    """The values the collection can be filtered by."""

    licenses: list[str]
    collections: list[str]
    sources: list[str]
    statuses: list[str]


class CollectionPair(Schema):
    """A pair as the collection lists it, with its one-word state (`status`)."""

    pair_id: int
    caption: str
    collection: str
    blob_uri: str | None
    source_uri: str | None
    job_id: int | None
    added_at: datetime
    license: str
    status: str
    similarity: float | None = None  # to the query image, when the search has one


class CollectionPage(Schema):
    total: int
    pairs: list[CollectionPair]


class Neighbour(Schema):
    """A pair near both an image and one candidate class's caption, with its contribution."""

    label: str
    pair_id: int
    caption: str | None
    license: str
    image_similarity: float
    caption_similarity: float
    contribution: float
