"""`asifdb encoders list`: the encoders the platform can name."""

from asifdb.schemas.common import Schema


class EncoderInfo(Schema):
    """A known encoder (or a family of hub names): its identity, modality, width (None: each
    model's own), where its weights come from, and whether it loads here offline."""

    name: str
    modality: str
    dim: int | None
    weights: str
    offline: bool
    aliases: list[str]
