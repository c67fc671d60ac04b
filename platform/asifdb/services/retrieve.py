"""Retrieval in ASIF's shared space: image to captions and text to images.

Over caller-given candidates every candidate is scored. Over the anchor collection the
candidates are the pairs nearest the query in its own modality (its k neighbours): a pair
that shares no anchor with the query scores zero, so those are the pairs that can score.
"""

from typing import Literal

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from asifdb import engine
from asifdb.anchors.live import LiveModel, View
from asifdb.db.models import Pair
from asifdb.db.session import snapshot
from asifdb.errors import Conflict, InvalidInput
from asifdb.schemas.predictions import Hit, Retrieval
from asifdb.services import models, predictions
from asifdb.services.classify import Options, check_images
from asifdb.services.model import Encoders
from asifdb.services.predictions import Evidence

MAX_CANDIDATES = 1000
MAX_TOP = 100


def _view(session: Session, live: LiveModel, encoders: Encoders) -> tuple[View, models.Definition]:
    snapshot(session)
    definition = models.require(session, live.model, encoders)
    view = live.view(session)
    if view.rows.size == 0:
        raise Conflict("the model has no usable pairs: add pairs first")
    return view, definition


def retrieve(
    session: Session,
    *,
    live: LiveModel,
    encoders: Encoders,
    direction: Literal["image_to_text", "text_to_image"],
    image: tuple[str, bytes] | None = None,
    query_text: str | None = None,
    candidate_texts: list[str] | None = None,
    candidate_images: list[tuple[str, bytes]] | None = None,
    options: Options | None = None,
    top: int = 10,
    client: str | None,
    channel: str,
) -> Retrieval:
    """The `top` best matches of the query, from the candidates or from the collection."""
    options = options or Options()
    options.check()
    if not 1 <= top <= MAX_TOP:
        raise InvalidInput(f"top = {top}: use 1 to {MAX_TOP}")
    view, definition = _view(session, live, encoders)
    options = options.following(definition)
    if direction == "image_to_text":
        if image is None:
            raise InvalidInput("image_to_text needs an image")
        [query] = check_images([image])
        query_rep = live.representation(
            view, "image", encoders.image.embed_batch([query.for_encoder]), options.k, options.p
        )
        texts, pair_ids = _texts(session, view, query_rep, candidate_texts)
        cand_rep = live.representation(
            view,
            "text",
            live.caption_embeddings(tuple(texts), encoders.text),
            options.k,
            options.p,
        )
        scores = engine.sparse_scores(query_rep, cand_rep)[0]
        names, query_name, sha = texts, query.key, query.sha256
    elif direction == "text_to_image":
        if not query_text or not query_text.strip():
            raise InvalidInput("text_to_image needs a non-empty text")
        query_rep = live.representation(
            view, "text", encoders.text.embed_batch([query_text.strip()]), options.k, options.p
        )
        names, emb, pair_ids = _images(session, view, query_rep, candidate_images, encoders)
        cand_rep = live.representation(view, "image", emb, options.k, options.p)
        scores = engine.sparse_scores(cand_rep, query_rep)[:, 0]
        query_name, sha = query_text.strip(), None
    else:
        raise InvalidInput(f"direction {direction!r}: use image_to_text or text_to_image")

    order = np.lexsort((np.arange(scores.size), -scores))[:top]
    hits = [
        Hit(
            rank=r + 1,
            candidate=names[i],
            pair_id=pair_ids[i] if pair_ids else None,
            score=float(scores[i]),
        )
        for r, i in enumerate(order)
    ]
    best = int(order[0])
    if direction == "image_to_text":
        contributions = engine.explain(query_rep, 0, cand_rep, [best], [1.0])
    else:
        contributions = engine.explain(cand_rep, best, query_rep, [0], [1.0])
    evidence = [
        Evidence(
            int(view.pair_ids[c.anchor]),
            None,
            c.image_similarity,
            c.caption_similarity,
            c.contribution,
        )
        for c in contributions
    ]
    prediction_id = predictions.record(
        session,
        evidence=evidence,
        task=f"retrieve_{direction}",
        input_sha256=sha,
        input_name=query_name,
        candidates={
            "source": "given" if (candidate_texts or candidate_images) else "collection",
            "count": len(names),
        },
        result={"hits": [hit.model_dump() for hit in hits]},
        predicted_label=str(hits[0].candidate),
        score=hits[0].score,
        model=definition.name,
        model_version=view.version,
        image_encoder=encoders.image.name,
        text_encoder=encoders.text.name,
        k=options.k,
        p=options.p,
        aggregation=None,
        topk_method="exact",
        client=client,
        channel=channel,
    )
    return Retrieval(
        prediction_id=prediction_id,
        direction=direction,
        model=definition.name,
        model_version=view.version,
        hits=hits,
    )


def _texts(
    session: Session, view: View, query_rep: engine.SparseRep, given: list[str] | None
) -> tuple[list[str], list[int] | None]:
    if given:
        if len(given) > MAX_CANDIDATES:
            raise InvalidInput(f"{len(given)} candidate texts: at most {MAX_CANDIDATES}")
        cleaned = [t.strip() for t in given]
        if not all(cleaned):
            raise InvalidInput("empty candidate text: every candidate needs text")
        return cleaned, None
    ids = [int(i) for i in view.pair_ids[query_rep.indices[0]]]
    captions = dict(session.execute(select(Pair.id, Pair.caption).where(Pair.id.in_(ids))).all())
    return [captions[i] for i in ids], ids


def _images(
    session: Session,
    view: View,
    query_rep: engine.SparseRep,
    given: list[tuple[str, bytes]] | None,
    encoders: Encoders,
) -> tuple[list[str], np.ndarray, list[int] | None]:
    if given:
        valid = (
            check_images(given)
            if len(given) <= 64
            else [
                item
                for start in range(0, len(given), 64)
                for item in check_images(given[start : start + 64])
            ]
        )
        return (
            [v.key for v in valid],
            encoders.image.embed_batch([v.for_encoder for v in valid]),
            None,
        )
    rows = query_rep.indices[0]
    ids = [int(i) for i in view.pair_ids[rows]]
    return [f"pair {i}" for i in ids], view.anchors.image[view.rows[rows]], ids
