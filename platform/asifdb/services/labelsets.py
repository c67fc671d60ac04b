"""Label sets: named candidate classes with caption templates, and checking ad-hoc ones."""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from asifdb.db.models import LabelSet
from asifdb.errors import Conflict, InvalidInput, NotFound
from asifdb.prompts import TEMPLATE_SETS
from asifdb.schemas.labelsets import LabelSet as LabelSetOut
from asifdb.services import audit

MAX_CLASSES = 1000
MAX_TEMPLATES = 100
MAX_LABEL_CHARS = 200


@dataclass(frozen=True)
class Candidates:
    """Classes and templates, checked; captions are class-major (class i, template j)."""

    classes: tuple[str, ...]
    templates: tuple[str, ...]
    label_set_id: int | None = None
    name: str | None = None

    @property
    def captions(self) -> list[str]:
        return [t.format(c) for c in self.classes for t in self.templates]


def check(classes: list[str], templates: list[str] | str | None) -> Candidates:
    """Clean and check classes and templates (a template-set name or a list); clear errors."""
    cleaned = [c.strip() for c in classes]
    if not cleaned or not any(cleaned):
        raise InvalidInput("no labels: pass at least two candidate classes")
    if any(not c for c in cleaned):
        raise InvalidInput("empty label in the list: every label needs text")
    if len(cleaned) < 2:
        raise InvalidInput("one label is not a classification: pass at least two classes")
    if len(cleaned) > MAX_CLASSES:
        raise InvalidInput(f"{len(cleaned)} labels: at most {MAX_CLASSES} per request")
    if len(set(cleaned)) != len(cleaned):
        dupes = sorted({c for c in cleaned if cleaned.count(c) > 1})
        raise InvalidInput(f"duplicate labels: {', '.join(dupes)}")
    if any(len(c) > MAX_LABEL_CHARS for c in cleaned):
        raise InvalidInput(f"a label is longer than {MAX_LABEL_CHARS} characters")
    if templates is None:
        templates = "default"
    if isinstance(templates, str):
        if templates not in TEMPLATE_SETS:
            raise InvalidInput(
                f"unknown template set {templates!r}: use one of {', '.join(TEMPLATE_SETS)} "
                "or a list of templates containing {}"
            )
        chosen = list(TEMPLATE_SETS[templates])
    else:
        chosen = [t.strip() for t in templates]
    if not chosen:
        raise InvalidInput("no templates: pass at least one, e.g. 'a photo of a {}.'")
    if len(chosen) > MAX_TEMPLATES:
        raise InvalidInput(f"{len(chosen)} templates: at most {MAX_TEMPLATES}")
    for template in chosen:
        if template.count("{}") != 1 or "{" in template.replace("{}", ""):
            raise InvalidInput(f"template {template!r} must contain {{}} exactly once")
    return Candidates(tuple(cleaned), tuple(chosen))


def create(
    session: Session,
    *,
    name: str,
    classes: list[str],
    templates: list[str] | str | None,
    actor: str,
) -> LabelSet:
    candidates = check(classes, templates)
    label_set = LabelSet(
        name=name.strip(),
        classes=list(candidates.classes),
        templates=list(candidates.templates),
        created_by=actor,
    )
    try:
        with session.begin_nested():
            session.add(label_set)
            session.flush()
    except IntegrityError:
        raise Conflict(f"a label set named {name!r} already exists") from None
    audit.record(
        session,
        actor=actor,
        action="labelset.create",
        target_type="label_set",
        target_id=str(label_set.id),
        details={"name": name},
    )
    return label_set


def get(session: Session, *, name: str) -> Candidates:
    label_set = session.scalar(select(LabelSet).where(LabelSet.name == name))
    if label_set is None:
        raise NotFound(f"no label set named {name!r}")
    return Candidates(
        tuple(label_set.classes), tuple(label_set.templates), label_set.id, label_set.name
    )


def candidates(
    session: Session,
    *,
    labels: Sequence[str] | None = None,
    label_set: str | None = None,
    templates: list[str] | str | None = None,
) -> Candidates:
    """What a request classifies among: its own labels (with a template set or its own
    templates) or a stored label set, never both (the one place that rule is kept)."""
    if label_set and labels:
        raise InvalidInput("pass labels or a label_set, not both")
    if label_set:
        return get(session, name=label_set)
    return check(list(labels or []), templates)


def list_all(session: Session) -> list[LabelSetOut]:
    return [out(s) for s in session.scalars(select(LabelSet).order_by(LabelSet.id))]


def out(stored: LabelSet) -> LabelSetOut:
    """A stored label set as the contract shows it."""
    return LabelSetOut(
        id=stored.id, name=stored.name, classes=stored.classes, templates=stored.templates
    )
