"""`/v1/label-sets`: named candidate classes with their caption templates."""

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from asifdb.api.deps import LimitsDep, SessionDep, allowed
from asifdb.api.params import Name
from asifdb.schemas.labelsets import LabelSet
from asifdb.services import labelsets
from asifdb.services.keys import Principal

router = APIRouter(prefix="/v1/label-sets", tags=["label sets"])


class LabelSetCreate(BaseModel):
    name: Name
    classes: list[Name] = Field(min_length=2, max_length=labelsets.MAX_CLASSES)
    templates: list[str] | str = Field(
        default="default", description="A template set name (default, cifar, imagenet) or a list."
    )


@router.get("", summary="Every stored label set")
def list_label_sets(
    session: SessionDep, _: Annotated[Principal, Depends(allowed("labelsets:read"))]
) -> list[LabelSet]:
    return labelsets.list_all(session)


@router.post("", status_code=201, summary="Store a label set")
def create_label_set(
    body: LabelSetCreate,
    session: SessionDep,
    limits: LimitsDep,
    who: Annotated[Principal, Depends(allowed("labelsets:write"))],
) -> LabelSet:
    # Stored only if a classification may use it whole (the same limits as an ad-hoc one).
    checked = labelsets.check(body.classes, body.templates)
    limits.check_candidates(checked.classes, checked.templates, field="classes")
    created = labelsets.create(
        session, name=body.name, classes=body.classes, templates=body.templates, actor=who.name
    )
    return labelsets.out(created)
