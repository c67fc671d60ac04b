"""`asifdb eval`: a model version's zero-shot accuracy on a labelled folder."""

from asifdb.schemas.base import Schema


class EvaluationSummary(Schema):
    """The figures of an evaluation, without its per-image predictions."""

    images: int
    classes: int
    templates: int
    top1: float
    top5: float
    chance: float
    per_class: dict[str, float]
    k: int
    p: float
    aggregation: str
    method: str
    model_version: int
    usable_pairs: int
    seconds: float
    images_per_second: float | None
