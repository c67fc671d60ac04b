"""`asifdb encoders list`: the encoders the platform can name; `asifdb reencode`: a re-encode's
progress."""

from datetime import datetime

from asifdb.schemas.base import Schema


class EncoderInfo(Schema):
    """A known encoder (or a family of hub names): its identity, modality, width (None: each
    model's own), where its weights come from, and whether it loads here offline."""

    name: str
    modality: str
    dim: int | None
    weights: str
    offline: bool
    aliases: list[str]


class ReencodeReport(Schema):
    """A re-encode's progress: pairs done of total, missing blobs, status, switch version."""

    id: int
    status: str
    image_encoder: str
    text_encoder: str
    from_image_encoder: str | None
    from_text_encoder: str | None
    total: int
    done: int
    missing: int
    processed: int
    switched_version: int | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
