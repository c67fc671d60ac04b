"""Several models over one collection: the default one (`model_state`'s encoders, the
settings' k and p, every pair, read through `usable_pairs`) and named ones (`models`: two
encoders, k, p, every pair or one collection, read through `model_usable_pairs`).

A named model is built by a re-encode job that writes its encoders' embeddings beside the
default's (services/reencode.py, the workers): until the job ends it is `building` and answers
nothing, and the default model's answers never change meanwhile. `resolve` is the one way a
query names its model; a named model's definition never changes (a database trigger), so a
prediction's model name always means the same encoders, k, p and pairs.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from asifdb.db.models import NamedModel, Reencode
from asifdb.encoders import ImageInput
from asifdb.encoders.protocol import EncoderError
from asifdb.errors import Conflict, InvalidInput, NotFound
from asifdb.schemas.models import ModelInfo
from asifdb.services import audit, embeddings, reencode
from asifdb.services.model import Encoders, EncodersFor, require_encoders
from asifdb.settings import Settings

DEFAULT = "default"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelRef:
    """What a query runs on: the model's name (DEFAULT for the default one), its encoders and
    its k and p (the defaults a request may override)."""

    name: str
    image_encoder: str | None
    text_encoder: str | None
    k: int
    p: float

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT


def resolve(session: Session, settings: Settings, name: str | None) -> ModelRef:
    """The model a query names (None or "default": the default model); a named one must be
    ready."""
    if name is None or name == DEFAULT:
        state = session.execute(
            text("SELECT image_encoder, text_encoder, k, p FROM model_state WHERE id = 1")
        ).one()
        return ModelRef(
            DEFAULT,
            state.image_encoder,
            state.text_encoder,
            settings.k if state.k is None else state.k,
            settings.p if state.p is None else state.p,
        )
    named = session.get(NamedModel, name)
    if named is None:
        raise NotFound(f"no model {name!r}: `asifdb models list` shows them")
    if named.status != "ready":
        raise Conflict(
            f"model {name!r} is {named.status}"
            + (f" ({named.error})" if named.error else "")
            + ": it answers once its build is done (`asifdb models list`)"
        )
    return ModelRef(named.name, named.image_encoder, named.text_encoder, named.k, named.p)


@dataclass(frozen=True)
class Definition:
    """A model as the query's own snapshot has it: the name predictions record, and its k and
    p (None: the default model's are the settings' until a named model is made the default)."""

    name: str
    k: int | None
    p: float | None


def require(session: Session, model: str | None, encoders: Encoders) -> Definition:
    """In the query's own snapshot: the model (None: the default) can answer with these
    encoders (a Conflict naming the mismatch otherwise; `Platform.model` read them before the
    snapshot, and a switch between the two is refused, never answered with a mix). Returns
    its definition there, whose k and p the query follows (`classify.Options.following`)."""
    if model is None or model == DEFAULT:
        require_encoders(session, encoders)
        state = session.execute(text("SELECT k, p FROM model_state WHERE id = 1")).one()
        return Definition(DEFAULT, state.k, state.p)
    named = session.get(NamedModel, model)
    if named is None or named.status != "ready":
        raise Conflict(f"model {model!r} is not ready: `asifdb models list`")
    if (named.image_encoder, named.text_encoder) != (encoders.image.name, encoders.text.name):
        raise Conflict(
            f"model {model!r} is {named.image_encoder} + {named.text_encoder}, "
            f"not {encoders.image.name} + {encoders.text.name}"
        )
    return Definition(named.name, named.k, named.p)


def add(
    session: Session,
    *,
    name: str,
    image_encoder: str,
    text_encoder: str,
    k: int,
    p: float,
    collection: str | None,
    actor: str,
    batch_size: int = reencode.DEFAULT_BATCH_SIZE,
) -> Reencode:
    """A new named model (encoders by canonical name), `building`, and the re-encode job that
    builds its embeddings (the caller hands its batches to the workers)."""
    if name == DEFAULT:
        raise InvalidInput(f"{DEFAULT!r} is the default model's name: choose another")
    if session.get(NamedModel, name) is not None:
        raise Conflict(f"model {name!r} exists: a model's definition never changes")
    from asifdb.services.classify import Options

    Options(k=k, p=p).check()
    session.add(
        NamedModel(
            name=name,
            image_encoder=image_encoder,
            text_encoder=text_encoder,
            k=k,
            p=p,
            collection=collection,
            created_by=actor,
        )
    )
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="model.create",
        target_type="model",
        target_id=name,
        details={
            "encoders": [image_encoder, text_encoder],
            "k": k,
            "p": p,
            "collection": collection,
        },
    )
    return build(session, name=name, actor=actor, batch_size=batch_size)


def build(
    session: Session, *, name: str, actor: str, batch_size: int = reencode.DEFAULT_BATCH_SIZE
) -> Reencode:
    """A re-encode job that embeds, by the named model's encoders, every pair of its
    collection that lacks them (all of them at first; later, the pairs added since)."""
    named = session.get(NamedModel, name)
    if named is None:
        raise NotFound(f"no model {name!r}")
    return reencode.start(
        session,
        image_encoder=named.image_encoder,
        text_encoder=named.text_encoder,
        actor=actor,
        batch_size=batch_size,
        model=name,
        collection=named.collection,
    )


def embed_new_pairs(
    session: Session,
    *,
    collection: str,
    pair_ids: Sequence[int | None],
    images: Sequence[ImageInput],
    captions: Sequence[str],
    done: dict[str, np.ndarray],
    encoders_for: EncodersFor,
) -> None:
    """Pairs an ingestion batch just added (`pair_ids[i]`, None where it added none, from
    `images[i]` and `captions[i]`) embedded by every named model's encoders that cover their
    collection, in the batch's transaction, so they join those models with it. `done`: the
    embeddings already made, by encoder name (the default's), reused rather than made again."""
    rows = [(i, pid) for i, pid in enumerate(pair_ids) if pid is not None]
    if not rows:
        return
    wanted = session.execute(
        select(NamedModel.image_encoder, NamedModel.text_encoder)
        .where(
            NamedModel.status != "failed",
            (NamedModel.collection.is_(None)) | (NamedModel.collection == collection),
        )
        .distinct()
    ).all()
    positions = [i for i, _ in rows]
    made = {name: matrix[positions] for name, matrix in done.items()}  # row j: rows[j]
    for image_name, text_name in wanted:
        if image_name in done and text_name in done:
            continue  # the batch's own encoders: stored with the pairs
        try:
            encoders = encoders_for(image_name, text_name)
        except EncoderError as exc:
            # This worker cannot load them: the model stays behind (`models list` shows it)
            # and `asifdb models build` catches up where they load; the batch goes in.
            log.warning("new pairs not embedded by %s + %s: %s", image_name, text_name, exc)
            continue
        if image_name not in made:
            made[image_name] = encoders.image.embed_batch([images[i] for i in positions])
        if text_name not in made:
            made[text_name] = encoders.text.embed_batch([captions[i] for i in positions])
        staged = embeddings.stage(
            session,
            image_encoder=image_name,
            image=made[image_name],
            text_encoder=text_name,
            text_=made[text_name],
        )
        embeddings.store(
            session, staged, pair_ids=[pid for _, pid in rows], ords=list(range(len(rows)))
        )


def make_default(
    session: Session, *, name: str, actor: str, batch_size: int = reencode.DEFAULT_BATCH_SIZE
) -> Reencode:
    """The re-encode job whose end makes the named model the default (its encoders, k and p):
    it embeds only the pairs that lack its encoders' embeddings (none, for a model built over
    every pair), then switches in one transaction; queries follow without a restart."""
    named = session.get(NamedModel, name)
    if named is None:
        raise NotFound(f"no model {name!r}")
    if named.status != "ready":
        raise Conflict(f"model {name!r} is {named.status}: only a ready model can be the default")
    if named.collection is not None:
        raise InvalidInput(
            f"model {name!r} covers collection {named.collection!r} only, and the default model "
            "covers every pair: add a model over every pair to make it the default"
        )
    return reencode.start(
        session,
        image_encoder=named.image_encoder,
        text_encoder=named.text_encoder,
        actor=actor,
        batch_size=batch_size,
        model=name,
        make_default=True,
    )


def list_models(session: Session, settings: Settings) -> list[ModelInfo]:
    """Every model, the default first, with how many pairs each has and should have."""
    default = resolve(session, settings, None)
    usable = session.execute(text("SELECT count(*) FROM usable_pairs")).scalar_one()
    out = [
        ModelInfo(
            name=DEFAULT,
            default=True,
            status="ready",
            image_encoder=default.image_encoder,
            text_encoder=default.text_encoder,
            k=default.k,
            p=default.p,
            collection=None,
            usable_pairs=usable,
            expected_pairs=_expected(session, None),
            error=None,
            created_at=None,
            ready_at=None,
        )
    ]
    counts = dict(
        session.execute(text("SELECT model, count(*) FROM model_usable_pairs GROUP BY model")).all()
    )
    for named in session.scalars(select(NamedModel).order_by(NamedModel.name)):
        out.append(
            ModelInfo(
                name=named.name,
                default=False,
                status=named.status,
                image_encoder=named.image_encoder,
                text_encoder=named.text_encoder,
                k=named.k,
                p=named.p,
                collection=named.collection,
                usable_pairs=counts.get(named.name, 0),
                expected_pairs=_expected(session, named.collection),
                error=named.error,
                created_at=named.created_at,
                ready_at=named.ready_at,
            )
        )
    return out


def _expected(session: Session, collection: str | None) -> int:
    """Pairs the default's rule admits (ready, not deleted, licence active) in `collection`."""
    return session.execute(
        text(
            "SELECT count(*) FROM pairs p JOIN licenses l ON l.id = p.license_id "
            "WHERE p.status = 'ready' AND p.deleted_at IS NULL AND l.status = 'active' "
            "AND (CAST(:c AS text) IS NULL OR p.collection = :c)"
        ),
        {"c": collection},
    ).scalar_one()
