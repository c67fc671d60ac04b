"""`asifdb models list` / `GET /models`: the models over the collection, default first."""

from datetime import datetime

from asifdb.schemas.base import Schema


class ModelInfo(Schema):
    """A model: its encoders, k, p, which pairs, whether it answers queries yet, and how many
    pairs it has (`usable_pairs`) against how many it should (`expected_pairs`: the usable
    pairs of its collection; more than `usable_pairs` means pairs added since its build, which
    `asifdb models build NAME` embeds)."""

    name: str
    default: bool
    status: str
    image_encoder: str | None
    text_encoder: str | None
    k: int
    p: float
    collection: str | None
    usable_pairs: int
    expected_pairs: int
    error: str | None
    created_at: datetime | None
    ready_at: datetime | None
