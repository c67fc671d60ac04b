"""`/v1/labelsets`: stored label sets."""

from asifdb.schemas.base import Schema


class LabelSet(Schema):
    id: int
    name: str
    classes: list[str]
    templates: list[str]
