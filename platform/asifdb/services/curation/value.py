"""Pair value on a labelled set: which pairs help or hurt the model's accuracy on labelled
images, and the accuracy with the most harmful left out (a dry run)."""

import time

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from asifdb import engine
from asifdb.anchors.live import LiveModel, View
from asifdb.engine import curation as math
from asifdb.errors import InvalidInput
from asifdb.schemas.curation import PairValues, ValuedPair, WhatIf
from asifdb.services import labelsets, models
from asifdb.services.classify import Options
from asifdb.services.curation.listing import PAIR_COLUMNS, check_page, model_view
from asifdb.services.evaluation import Labelled
from asifdb.services.model import Encoders

WHAT_IF_COUNTS = (0, 10, 25, 50, 100, 200)
_IMAGE_BATCH = 64


def pair_values(
    session: Session,
    *,
    live: LiveModel,
    encoders: Encoders,
    labelled: Labelled,
    templates: list[str] | str | None = None,
    options: Options | None = None,
    counts: tuple[int, ...] = WHAT_IF_COUNTS,
    top: int = 20,
) -> PairValues:
    """Each pair's value on a labelled set, and accuracy after excluding the most harmful.

    `live` and `encoders`: the model's (`Platform.model(name)`, the default or a named one);
    `options`: its k, p and aggregation (those left to the model follow it in the snapshot).

    `labelled`: uploaded images with their classes (`evaluation.labelled_uploads`, what the
    API and UI send) or a folder under SOURCE_ROOTS (`evaluation.read_folder`, the CLI); both
    bound their image count (MAX_VALUE_IMAGES) before any image is encoded.

    The set's images are split in two halves (alternating within each class, by file name):
    values are found on the first, and the "what if" accuracy after excluding the N most
    harmful pairs is measured on both, the second being held out (an honest gain). A dry run:
    nothing is recorded and the live model does not change.
    """
    options = options or Options()
    options.check()
    check_page(top, 0)
    if any(c < 0 for c in counts):
        raise InvalidInput("counts of pairs to exclude must be 0 or more")
    started = time.perf_counter()
    candidates = labelsets.check(list(labelled.classes), templates)
    n_classes, n_templates = len(candidates.classes), len(candidates.templates)
    seen: dict[int, int] = {}
    halves: list[int] = []
    for label in labelled.labels:
        halves.append(seen.get(label, 0) % 2)
        seen[label] = seen.get(label, 0) + 1
    half = np.array(halves)
    true = np.array(labelled.labels, dtype=np.int64)
    if (half == 0).sum() == 0 or (half == 1).sum() == 0:
        raise InvalidInput("the set needs at least two images of a class to split in halves")
    image_emb = np.concatenate(
        [
            encoders.image.embed_batch([data for _, data in batch])
            for batch in labelled.batches(_IMAGE_BATCH)
        ]
    )
    caption_emb = live.caption_embeddings(tuple(candidates.captions), encoders.text)
    view = model_view(session, live, least=1)
    definition = models.require(session, live.model, encoders)
    options = options.following(definition)
    p, aggregation = options.p, options.aggregation
    image, caption = view.image_anchors(), view.text_anchors()
    k = min(options.k, len(image))

    def reps(keep: np.ndarray) -> tuple[engine.SparseRep, engine.SparseRep]:
        return (
            engine.relative_representation(image_emb, image[keep], k, p),
            engine.relative_representation(caption_emb, caption[keep], k, p),
        )

    everything = np.arange(len(image))
    image_rep, caption_rep = reps(everything)
    find = np.flatnonzero(half == 0)
    found = math.values(
        _rows(image_rep, find),
        caption_rep,
        true[find],
        n_classes,
        n_templates,
        len(image),
        aggregation,  # type: ignore[arg-type]
    )
    harmful = np.argsort(found.value, kind="stable")
    harmful = harmful[found.value[harmful] < 0]
    helpful = np.argsort(-found.value, kind="stable")
    helpful = helpful[found.value[helpful] > 0]
    curve = []
    for count in sorted(set(counts)):
        removed = harmful[:count]
        if count and len(removed) < count:
            break
        keep = np.setdiff1d(everything, removed) if count else everything
        if not len(keep):
            break
        image_rep_n, caption_rep_n = (image_rep, caption_rep) if not count else reps(keep)
        predicted, _ = math.predict(
            image_rep_n,
            caption_rep_n,
            n_classes,
            n_templates,
            aggregation,  # type: ignore[arg-type]
        )
        correct = predicted == true
        curve.append(
            WhatIf(
                excluded=int(count),
                accuracy_found_on=float(correct[half == 0].mean()),
                accuracy_held_out=float(correct[half == 1].mean()),
            )
        )
    return PairValues(
        model=definition.name,
        model_version=view.version,
        usable_pairs=int(len(image)),
        images_found_on=int((half == 0).sum()),
        images_held_out=int((half == 1).sum()),
        classes=list(candidates.classes),
        templates=list(candidates.templates),
        k=k,
        p=p,
        aggregation=aggregation,
        harmful_pairs=int(len(harmful)),
        helpful_pairs=int(len(helpful)),
        harmful=_valued(session, view, harmful[:top], found.value),
        helpful=_valued(session, view, helpful[:top], found.value),
        what_if=curve,
        harmful_ids=view.pair_ids[harmful[: max(counts, default=0)]].tolist(),
        seconds=round(time.perf_counter() - started, 2),
    )


def _rows(rep: engine.SparseRep, rows: np.ndarray) -> engine.SparseRep:
    return engine.SparseRep(
        rep.indices[rows], rep.values[rows], rep.similarities[rows], rep.n_anchors
    )


def _valued(
    session: Session, view: View, positions: np.ndarray, value: np.ndarray
) -> list[ValuedPair]:
    ids = view.pair_ids[positions]
    rows = {
        r["pair_id"]: dict(r)
        for r in session.execute(
            text(
                f"SELECT {PAIR_COLUMNS} FROM pairs u JOIN licenses l ON l.id = u.license_id "
                "LEFT JOIN review_marks r ON r.pair_id = u.id WHERE u.id = ANY(:ids)"
            ),
            {"ids": ids.tolist()},
        ).mappings()
    }
    return [
        ValuedPair(**rows[int(i)], value=float(value[pos]))
        for i, pos in zip(ids, positions, strict=True)
    ]
