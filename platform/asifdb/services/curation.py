"""Curation use cases: find the pairs that mislead the model (mismatched captions, near-duplicate
images, pairs that hurt a labelled set) and act on them (mark, reject, restore, revoke).

Called by `asifdb curate`, `/v1/curation/...` and the Curate page. The math is engine/curation.py.
"""

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from asifdb import engine
from asifdb.anchors.live import LiveModel, View
from asifdb.engine import curation as math
from asifdb.errors import Conflict, InvalidInput, NotFound
from asifdb.schemas.curation import LicensesRevoked
from asifdb.services import labelsets, licences, model
from asifdb.services.evaluation import Labelled
from asifdb.services.model import Encoders

MAX_PAGE = 500
# Pairs compared with each other at once: each pair's caption is ranked among the other
# captions of its batch (a random sample of the collection); memory is BATCH^2 scores.
FIT_BATCH = 1024
# Mismatches are scored in the collection's own alignment of its two modalities (regularised
# CCA, engine.curation.align) once it has this many pairs per embedding dimension (11,648 for
# the default encoders). The alignment is fitted on the pairs it scores, and on fewer pairs it
# learns them rather than the modalities: measured on subsets of the default collection with
# 5 % swapped captions (AUC, encoders' spaces -> alignment), it loses at 7,000 pairs (0.967 ->
# 0.947) and 10,000 (0.966 -> 0.960) and wins from 11,648 (0.964 -> 0.970) on; at 20,000,
# 0.966 -> 0.977-0.981 (docs/results-curation.md). Below it, the encoders' spaces as they are.
# (Fitting it out of fold, each pair scored in an alignment fitted without it, was measured
# too and loses: 0.964 at 20,000.)
ALIGN_PAIRS_PER_DIMENSION = 7
# fit's k and p where the caller sets none: p = 8 in the encoders' spaces (the model's default;
# p = 4 is no better there), p = 4 in the alignment, whose cosines spread wider: at 20,000
# pairs p = 3.5 to 5 give 0.977 where p = 8 gives 0.974 and p = 16 0.956.
FIT_K = 800
FIT_P = {False: 8.0, True: 4.0}
ALIGN_RANK = 256
# The alignment is fitted on at most this many pairs (a random sample past it): 120 pairs a
# dimension is ample for the statistics, and it keeps a refresh of a few new pairs at 1M from
# paying for a pass over every pair's Gram matrix (projecting them is the O(N) part left).
ALIGN_SAMPLE = 200_000
SPACES = {True: "the collection's alignment", False: "the encoders' spaces"}
MIXED_SPACES = (
    "scores from more than one space are mixed in this list (the collection crossed the "
    "alignment's size since some were scored): rescore all with `asifdb curate fit --full`"
)
# Image cosine at or above which two pairs are near-duplicates. On the 20,000-pair default
# collection (docs/results-curation.md) the median copy (re-encoded JPEG 0.92, 90 % crop 0.90,
# 2x resize 0.98) is above it, while 99 % of images have their nearest other image below 0.84:
# at 0.86, 96 % of inserted copies are grouped with their original and 88 of the 20,000
# originals have a neighbour above it.
DUPLICATE_THRESHOLD = 0.86
DUPLICATE_NEIGHBOURS = 8
WHAT_IF_COUNTS = (0, 10, 25, 50, 100, 200)
_IMAGE_BATCH = 64


def _page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit = {limit}: use 1 to {MAX_PAGE}")
    if offset < 0:
        raise InvalidInput(f"offset = {offset}: use 0 or more")


def _check(k: int, p: float) -> None:
    if not 1 <= k <= 10_000:
        raise InvalidInput(f"k = {k}: use 1 to 10000")
    if not 1 <= p <= 64:
        raise InvalidInput(f"p = {p}: use a value in [1, 64]")


def _view(session: Session, live: LiveModel, *, least: int) -> View:
    session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    view = live.view(session)
    if view.rows.size < least:
        raise Conflict(
            f"the model has {view.rows.size} usable pairs: curation needs at least {least}"
        )
    return view


def _index(anchors: np.ndarray, live: LiveModel) -> engine.ExactTopK:
    """An exact index over the view's (unit, float32) rows as they are, not a normalised copy,
    scanned as the live model scans batches (EXACT_SCAN): the same results, less memory."""
    return engine.ExactTopK.of_unit_rows(
        anchors, ids=np.arange(len(anchors)), scan_dtype=live.batch_scan
    )


# ---------------------------------------------------------------- mismatched pairs


def refresh_fit(
    session: Session,
    *,
    live: LiveModel,
    k: int | None = None,
    p: float | None = None,
    full: bool = False,
    batch: int = FIT_BATCH,
    seed: int = 0,
) -> dict[str, Any]:
    """Score how well each usable pair's caption fits its image, leave-one-out, in the
    collection's alignment of its modalities once it is large enough (`aligned` in the result),
    with k and p as given or else FIT_K and the space's FIT_P (both in the result).

    Incremental: only usable pairs without a score are scored (new pairs, or every pair with
    `full`), each in a batch filled up with randomly chosen scored pairs to compare with; the
    other scores keep the model version they were computed at (`fit_status` says how far the
    model has moved since). Each row is written in this transaction.
    """
    _check(FIT_K if k is None else k, FIT_P[False] if p is None else p)
    if batch < 3:
        raise InvalidInput(f"batch = {batch}: use at least 3")
    started = time.perf_counter()
    view = _view(session, live, least=3)
    ids = view.pair_ids
    n = len(ids)
    aligned = aligns(n, view.anchors.image.shape[1] + view.anchors.text.shape[1])
    k, p = min(FIT_K if k is None else k, n - 1), FIT_P[aligned] if p is None else p
    if full:
        session.execute(text("DELETE FROM pair_fit"))
        targets = np.arange(n)
    else:
        scored = np.fromiter(
            session.execute(text("SELECT pair_id FROM pair_fit")).scalars(), dtype=np.int64
        )
        targets = np.flatnonzero(~np.isin(ids, scored))
    if len(targets):
        image, caption = fit_spaces(view.image_anchors(), view.text_anchors(), seed=seed)
        indexes = _index(image, live), _index(caption, live)
        fits = fit_batches(*indexes, image, caption, targets, k=k, p=p, batch=batch, seed=seed)
        _write_fit(session, view, fits, {"aligned": aligned, "k": k, "p": p})
    return {
        "model_version": view.version,
        "usable_pairs": n,
        "scored": int(len(targets)),
        "aligned": aligned,
        "k": k,
        "p": p,
        "seconds": round(time.perf_counter() - started, 2),
    }


def aligns(pairs: int, dimensions: int) -> bool:
    """Whether fit is scored in the collection's alignment: at least ALIGN_PAIRS_PER_DIMENSION
    pairs for each of the two encoders' dimensions together."""
    return pairs >= ALIGN_PAIRS_PER_DIMENSION * dimensions


def fit_spaces(
    image: np.ndarray, caption: np.ndarray, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The (n, d) image and caption rows as fit is scored in them: projected by the collection's
    alignment where it `aligns`, else the encoders' own."""
    if not aligns(len(image), image.shape[1] + caption.shape[1]):
        return image, caption
    alignment = fit_alignment(image, caption, seed=seed)
    return alignment.project(image, "image"), alignment.project(caption, "caption")


def fit_alignment(
    image: np.ndarray, caption: np.ndarray, *, seed: int, chunk: int = 65_536
) -> math.Alignment:
    """The alignment of the pairs' (n, d) image and caption rows, fitted on all of them or on a
    random ALIGN_SAMPLE of them, `chunk` rows at a time."""
    n = len(image)
    sample = np.arange(n)
    if n > ALIGN_SAMPLE:
        sample = np.sort(np.random.default_rng(seed).choice(n, ALIGN_SAMPLE, replace=False))
    parts = (sample[s : s + chunk] for s in range(0, len(sample), chunk))
    return math.align(((image[rows], caption[rows]) for rows in parts), rank=ALIGN_RANK)


def _write_fit(
    session: Session,
    view: View,
    fits: Iterator[tuple[np.ndarray, np.ndarray, math.Fit]],
    scored_with: dict[str, Any],
) -> None:
    """Store `fit_batches`' results, one statement a batch, each row with `scored_with`'s
    aligned, k and p."""
    for part, members, fit in fits:
        m = len(part)
        session.execute(
            text(
                "INSERT INTO pair_fit (pair_id, model_version, fit, score, margin, rank, compared, "
                "aligned, k, p) "
                "SELECT unnest(CAST(:ids AS bigint[])), :v, unnest(CAST(:fit AS float8[])), "
                "unnest(CAST(:score AS float8[])), unnest(CAST(:margin AS float8[])), "
                "unnest(CAST(:rank AS int[])), :compared, :aligned, :k, :p "
                "ON CONFLICT (pair_id) DO UPDATE SET model_version = excluded.model_version, "
                "fit = excluded.fit, score = excluded.score, margin = excluded.margin, "
                "rank = excluded.rank, compared = excluded.compared, aligned = excluded.aligned, "
                "k = excluded.k, p = excluded.p, computed_at = now()"
            ),
            {
                **scored_with,
                "ids": view.pair_ids[part].tolist(),
                "v": view.version,
                "fit": fit.fit[:m].astype(float).tolist(),
                "score": fit.score[:m].astype(float).tolist(),
                "margin": fit.margin[:m].astype(float).tolist(),
                "rank": fit.rank[:m].tolist(),
                "compared": len(members) - 1,
            },
        )


def fit_batches(
    image_index: engine.TopK,
    caption_index: engine.TopK,
    image: np.ndarray,
    caption: np.ndarray,
    targets: np.ndarray,
    *,
    k: int,
    p: float,
    batch: int,
    seed: int,
) -> Iterator[tuple[np.ndarray, np.ndarray, math.Fit]]:
    """The fit of the `targets` (indices into the n rows, which the indexes hold as keys 0..n-1)
    in shuffled batches of `batch`, a short one filled up with random other pairs to compare
    with: (part of the targets, the batch's members, their fit; the part comes first)."""
    n = len(image)
    rng = np.random.default_rng(seed)
    order = rng.permutation(targets)
    for part in np.array_split(order, -(-len(order) // batch)):
        members = part
        if len(part) < batch and n > len(part):
            others = np.setdiff1d(np.arange(n), part, assume_unique=True)
            take = min(batch - len(part), len(others))
            members = np.concatenate([part, rng.choice(others, take, replace=False)])
        if len(members) < 3:
            continue
        image_rep = math.leave_one_out(image_index, image[members], members, k, p, n)
        caption_rep = math.leave_one_out(caption_index, caption[members], members, k, p, n)
        yield part, members, math.fit(image_rep, caption_rep)


def fit_status(session: Session) -> dict[str, Any]:
    """How many usable pairs are scored, in which space, and how many changes the oldest score
    predates."""
    row = session.execute(
        text(
            "SELECT count(u.id) AS usable, count(f.pair_id) AS scored, "
            "min(f.model_version) AS oldest, count(*) FILTER (WHERE f.aligned) AS aligned, "
            "count(*) FILTER (WHERE NOT f.aligned) AS encoders, "
            "count(*) FILTER (WHERE f.pair_id IS NOT NULL AND f.aligned IS NULL) AS unknown "
            "FROM usable_pairs u LEFT JOIN pair_fit f ON f.pair_id = u.id"
        )
    ).one()
    current = model.current_version(session)
    changed = 0
    if row.oldest is not None:
        changed = session.execute(
            text(
                "SELECT count(DISTINCT pair_id) FROM pair_usability "
                "WHERE from_version > :v OR to_version > :v"
            ),
            {"v": row.oldest},
        ).scalar_one()
    return {
        "model_version": current,
        "usable_pairs": row.usable,
        "scored": row.scored,
        "unscored": row.usable - row.scored,
        "oldest_score_version": row.oldest,
        "pairs_changed_since_oldest": changed,
        "scored_in": {
            SPACES[True]: row.aligned,
            SPACES[False]: row.encoders,
            "not recorded (before 2026-12-02)": row.unknown,
        },
        # Rows of more than one space (or unrecorded ones beside others) are not comparable:
        # the collection crossed the alignment's size since they were scored. Rescore with full.
        "mixed_spaces": sum(1 for c in (row.aligned, row.encoders, row.unknown) if c) > 1,
    }


_PAIR_COLUMNS = (
    "u.id AS pair_id, u.caption, u.collection, u.source_key, u.width, u.height, "
    "l.name AS license, (r.pair_id IS NOT NULL) AS marked"
)


def mismatches(session: Session, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """Usable pairs whose caption fits their image worst, lowest fit first (one page)."""
    _page(limit, offset)
    rows = session.execute(
        text(
            f"SELECT {_PAIR_COLUMNS}, f.fit, f.score, f.margin, f.rank, f.compared, "
            "f.model_version, f.aligned, f.k, f.p "
            "FROM pair_fit f JOIN usable_pairs u ON u.id = f.pair_id "
            "JOIN licenses l ON l.id = u.license_id "
            "LEFT JOIN review_marks r ON r.pair_id = u.id "
            "ORDER BY f.fit, f.pair_id LIMIT :limit OFFSET :offset"
        ),
        {"limit": limit, "offset": offset},
    ).mappings()
    return {"items": [dict(r) for r in rows], **fit_status(session)}


# ---------------------------------------------------------------- near-duplicates


def refresh_duplicates(
    session: Session,
    *,
    live: LiveModel,
    threshold: float = DUPLICATE_THRESHOLD,
    neighbours: int = DUPLICATE_NEIGHBOURS,
    batch: int = 4096,
) -> dict[str, Any]:
    """Group usable pairs whose images have a cosine of at least `threshold` (recomputed whole).

    The suggested keeper of a group is the member whose caption fits best (run `refresh_fit`
    first; the images are alike, so the caption decides), then the oldest pair. Image size
    does not decide: an upscaled copy is larger and no better.
    """
    if not 0 < threshold <= 1:
        raise InvalidInput(f"threshold = {threshold}: use a cosine in (0, 1]")
    if not 1 <= neighbours <= 100:
        raise InvalidInput(f"neighbours = {neighbours}: use 1 to 100")
    started = time.perf_counter()
    view = _view(session, live, least=2)
    image = view.image_anchors()
    index = _index(image, live)
    n = len(image)
    edges: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, n, batch):
        own = np.arange(start, min(start + batch, n))
        edges.append(math.duplicate_edges(index, image[own], own, threshold, neighbours))
    a, b, cos = (np.concatenate(parts) for parts in zip(*edges, strict=True))
    group = math.groups(n, a, b)
    best = np.full(n, -1.0)
    np.maximum.at(best, a, cos)
    np.maximum.at(best, b, cos)
    members = np.flatnonzero(best >= 0)
    ids = view.pair_ids
    session.execute(text("DELETE FROM near_duplicates"))
    if len(members):
        extra = {
            row.id: row
            for row in session.execute(
                text(
                    "SELECT p.id, coalesce(f.fit, 0) AS fit FROM pairs p "
                    "LEFT JOIN pair_fit f ON f.pair_id = p.id WHERE p.id = ANY(:ids)"
                ),
                {"ids": ids[members].tolist()},
            )
        }
        fit = np.array([extra[int(i)].fit for i in ids[members]], dtype=np.float64)
        keep = math.keepers(group[members], fit)
        session.execute(
            text(
                "INSERT INTO near_duplicates (pair_id, group_id, model_version, threshold, "
                "cosine, keeper) SELECT unnest(CAST(:ids AS bigint[])), "
                "unnest(CAST(:groups AS bigint[])), :v, :t, unnest(CAST(:cos AS float8[])), "
                "unnest(CAST(:keep AS boolean[]))"
            ),
            {
                "ids": ids[members].tolist(),
                "groups": ids[group[members]].tolist(),
                "v": view.version,
                "t": threshold,
                "cos": best[members].tolist(),
                "keep": keep.tolist(),
            },
        )
    return {
        "model_version": view.version,
        "usable_pairs": n,
        "threshold": threshold,
        "groups": int(len(np.unique(group[members]))),
        "pairs_in_groups": int(len(members)),
        "seconds": round(time.perf_counter() - started, 2),
    }


def duplicates(session: Session, *, limit: int = 20, offset: int = 0) -> dict[str, Any]:
    """Groups of near-duplicate usable pairs, most similar first (one page of groups)."""
    _page(limit, offset)
    groups = session.execute(
        text(
            "SELECT d.group_id, max(d.cosine) AS cosine, count(*) AS size, "
            "min(d.threshold) AS threshold, min(d.model_version) AS model_version "
            "FROM near_duplicates d JOIN usable_pairs u ON u.id = d.pair_id "
            "GROUP BY d.group_id HAVING count(*) > 1 "
            "ORDER BY max(d.cosine) DESC, d.group_id LIMIT :limit OFFSET :offset"
        ),
        {"limit": limit, "offset": offset},
    ).mappings()
    out = [dict(g) for g in groups]
    members: dict[int, list[dict[str, Any]]] = {}
    for row in session.execute(
        text(
            f"SELECT d.group_id, {_PAIR_COLUMNS}, d.cosine, d.keeper, f.fit "
            "FROM near_duplicates d JOIN usable_pairs u ON u.id = d.pair_id "
            "JOIN licenses l ON l.id = u.license_id "
            "LEFT JOIN review_marks r ON r.pair_id = u.id "
            "LEFT JOIN pair_fit f ON f.pair_id = u.id "
            "WHERE d.group_id = ANY(:groups) ORDER BY d.keeper DESC, u.id"
        ),
        {"groups": [g["group_id"] for g in out]},
    ).mappings():
        member = dict(row)
        members.setdefault(member.pop("group_id"), []).append(member)
    total = session.execute(
        text(
            "SELECT count(*) FROM (SELECT d.group_id FROM near_duplicates d "
            "JOIN usable_pairs u ON u.id = d.pair_id GROUP BY d.group_id HAVING count(*) > 1) g"
        )
    ).scalar_one()
    return {
        "groups": [{**g, "pairs": members.get(g["group_id"], [])} for g in out],
        "total_groups": total,
    }


# ---------------------------------------------------------------- pair value on a labelled set


def pair_values(
    session: Session,
    *,
    live: LiveModel,
    encoders: Encoders,
    labelled: Labelled,
    templates: list[str] | str | None = None,
    k: int = 800,
    p: float = 8.0,
    aggregation: str = "max",
    counts: tuple[int, ...] = WHAT_IF_COUNTS,
    top: int = 20,
) -> dict[str, Any]:
    """Each pair's value on a labelled set, and accuracy after excluding the most harmful.

    `labelled`: uploaded images with their classes (`evaluation.labelled_uploads`, what the
    API and UI send) or a folder under SOURCE_ROOTS (`evaluation.read_folder`, the CLI); both
    bound their image count (MAX_VALUE_IMAGES) before any image is encoded.

    The set's images are split in two halves (alternating within each class, by file name):
    values are found on the first, and the "what if" accuracy after excluding the N most
    harmful pairs is measured on both, the second being held out (an honest gain). A dry run:
    nothing is recorded and the live model does not change.
    """
    _check(k, p)
    _page(top, 0)
    if aggregation not in ("max", "mean"):
        raise InvalidInput(f"aggregation {aggregation!r}: use 'max' or 'mean'")
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
    view = _view(session, live, least=1)
    model.require_encoders(session, encoders)
    image, caption = view.image_anchors(), view.text_anchors()
    k = min(k, len(image))

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
            {
                "excluded": int(count),
                "accuracy_found_on": float(correct[half == 0].mean()),
                "accuracy_held_out": float(correct[half == 1].mean()),
            }
        )
    return {
        "model_version": view.version,
        "usable_pairs": int(len(image)),
        "images_found_on": int((half == 0).sum()),
        "images_held_out": int((half == 1).sum()),
        "classes": list(candidates.classes),
        "templates": list(candidates.templates),
        "k": k,
        "p": p,
        "aggregation": aggregation,
        "harmful_pairs": int(len(harmful)),
        "helpful_pairs": int(len(helpful)),
        "harmful": _valued(session, view, harmful[:top], found.value),
        "helpful": _valued(session, view, helpful[:top], found.value),
        "what_if": curve,
        "harmful_ids": view.pair_ids[harmful[: max(counts, default=0)]].tolist(),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _rows(rep: engine.SparseRep, rows: np.ndarray) -> engine.SparseRep:
    return engine.SparseRep(
        rep.indices[rows], rep.values[rows], rep.similarities[rows], rep.n_anchors
    )


def _valued(
    session: Session, view: View, positions: np.ndarray, value: np.ndarray
) -> list[dict[str, Any]]:
    ids = view.pair_ids[positions]
    rows = {
        r["pair_id"]: dict(r)
        for r in session.execute(
            text(
                f"SELECT {_PAIR_COLUMNS} FROM pairs u JOIN licenses l ON l.id = u.license_id "
                "LEFT JOIN review_marks r ON r.pair_id = u.id WHERE u.id = ANY(:ids)"
            ),
            {"ids": ids.tolist()},
        ).mappings()
    }
    return [
        {**rows[int(i)], "value": float(value[pos])} for i, pos in zip(ids, positions, strict=True)
    ]


# ---------------------------------------------------------------- acting on pairs


def _ids(pair_ids: list[int]) -> list[int]:
    ids = sorted({int(i) for i in pair_ids})
    if not ids:
        raise InvalidInput("no pair given")
    return ids


def _reason(reason: str | None) -> str:
    if not reason or not reason.strip():
        raise InvalidInput("a reason is needed (it is kept in the audit log)")
    return reason.strip()


def _existing(session: Session, ids: list[int], *, lock: bool = False) -> dict[int, Any]:
    found = {
        row.id: row
        for row in session.execute(
            text(
                "SELECT id, status, deleted_at, license_id FROM pairs WHERE id = ANY(:ids)"
                + (" ORDER BY id FOR UPDATE" if lock else "")
            ),
            {"ids": ids},
        )
    }
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"no pair {', '.join(map(str, missing[:10]))}")
    return found


def _audit(
    session: Session,
    ids: list[int],
    *,
    action: str,
    actor: str,
    reason: str | None,
    version: int | None,
) -> None:
    session.execute(
        text(
            "INSERT INTO audit_events (actor, action, target_type, target_id, reason, "
            "model_version) SELECT :actor, :action, 'pair', unnest(CAST(:ids AS text[])), "
            ":reason, :v"
        ),
        {
            "actor": actor,
            "action": action,
            "ids": [str(i) for i in ids],
            "reason": reason,
            "v": version,
        },
    )


def mark(
    session: Session, *, pair_ids: list[int], actor: str, reason: str | None = None
) -> dict[str, Any]:
    """Mark pairs for review (the model does not change); marking twice keeps the first mark."""
    ids = _ids(pair_ids)
    _existing(session, ids)
    marked = list(
        session.execute(
            text(
                "INSERT INTO review_marks (pair_id, marked_by, reason) "
                "SELECT unnest(CAST(:ids AS bigint[])), :actor, :reason "
                "ON CONFLICT (pair_id) DO NOTHING RETURNING pair_id"
            ),
            {"ids": ids, "actor": actor, "reason": reason},
        ).scalars()
    )
    _audit(
        session, sorted(marked), action="pair.mark_review", actor=actor, reason=reason, version=None
    )
    return {"marked": len(marked), "already_marked": len(ids) - len(marked)}


def unmark(session: Session, *, pair_ids: list[int], actor: str) -> dict[str, Any]:
    """Take pairs off the review queue."""
    ids = _ids(pair_ids)
    gone = list(
        session.execute(
            text("DELETE FROM review_marks WHERE pair_id = ANY(:ids) RETURNING pair_id"),
            {"ids": ids},
        ).scalars()
    )
    _audit(
        session, sorted(gone), action="pair.unmark_review", actor=actor, reason=None, version=None
    )
    return {"unmarked": len(gone)}


def reviews(session: Session, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """The review queue: marked pairs, oldest mark first, with their state and fit."""
    _page(limit, offset)
    rows = session.execute(
        text(
            "SELECT p.id AS pair_id, p.caption, p.status, p.status_reason, l.name AS license, "
            "l.status AS license_status, (u.id IS NOT NULL) AS usable, r.marked_by, r.marked_at, "
            "r.reason, f.fit FROM review_marks r JOIN pairs p ON p.id = r.pair_id "
            "JOIN licenses l ON l.id = p.license_id "
            "LEFT JOIN usable_pairs u ON u.id = p.id LEFT JOIN pair_fit f ON f.pair_id = p.id "
            "ORDER BY r.marked_at, p.id LIMIT :limit OFFSET :offset"
        ),
        {"limit": limit, "offset": offset},
    ).mappings()
    total = session.execute(text("SELECT count(*) FROM review_marks")).scalar_one()
    return {"items": [dict(r) for r in rows], "total": total}


def reject(
    session: Session, *, pair_ids: list[int], actor: str, reason: str | None
) -> dict[str, Any]:
    """Reject pairs: they leave the model in this transaction (a new version); reversible."""
    ids = _ids(pair_ids)
    why = _reason(reason)
    pairs = _existing(session, ids, lock=True)
    deleted = [i for i in ids if pairs[i].deleted_at is not None]
    if deleted:
        raise Conflict(f"pair {deleted[0]} is deleted: there is nothing to reject")
    todo = [i for i in ids if pairs[i].status != "rejected"]
    leaving = list(
        session.execute(
            text("SELECT id FROM usable_pairs WHERE id = ANY(:ids) ORDER BY id"), {"ids": todo}
        ).scalars()
    )
    session.execute(
        text("UPDATE pairs SET status = 'rejected', status_reason = :r WHERE id = ANY(:ids)"),
        {"r": why, "ids": todo},
    )
    session.execute(text("DELETE FROM review_marks WHERE pair_id = ANY(:ids)"), {"ids": todo})
    version = None
    if leaving:
        version = model.bump(session, change=f"reject {len(leaving)} pairs: -{len(leaving)}")
        model.close_usability(session, pair_ids=leaving, version=version)
    _audit(session, todo, action="pair.reject", actor=actor, reason=why, version=version)
    return {
        "rejected": len(todo),
        "already_rejected": len(ids) - len(todo),
        "pairs_removed": len(leaving),
        "model_version": version or model.current_version(session),
    }


def restore(
    session: Session, *, pair_ids: list[int], actor: str, reason: str | None = None
) -> dict[str, Any]:
    """Undo a rejection: the pairs are ready again and usable ones return to the model now."""
    ids = _ids(pair_ids)
    pairs = _existing(session, ids, lock=True)
    todo = [i for i in ids if pairs[i].status == "rejected"]
    if not todo:
        raise Conflict("none of these pairs is rejected: nothing to restore")
    session.execute(
        text("UPDATE pairs SET status = 'ready', status_reason = NULL WHERE id = ANY(:ids)"),
        {"ids": todo},
    )
    returning = list(
        session.execute(
            text("SELECT id FROM usable_pairs WHERE id = ANY(:ids) ORDER BY id"), {"ids": todo}
        ).scalars()
    )
    version = None
    if returning:
        version = model.bump(session, change=f"restore {len(returning)} rejected pairs")
        model.open_usability(session, pair_ids=returning, version=version)
    _audit(session, todo, action="pair.restore", actor=actor, reason=reason, version=version)
    return {
        "restored": len(todo),
        "pairs_returned": len(returning),
        "model_version": version or model.current_version(session),
    }


def revoke_licences(
    session: Session, *, pair_ids: list[int], actor: str, reason: str | None
) -> LicensesRevoked:
    """Revoke the licence(s) the pairs were added under: all their pairs leave the model."""
    ids = _ids(pair_ids)
    why = _reason(reason)
    pairs = _existing(session, ids)
    done = []
    for licence_id in sorted({row.license_id for row in pairs.values()}):
        status = session.execute(
            text("SELECT status FROM licenses WHERE id = :l"), {"l": licence_id}
        ).scalar_one()
        if status == "active":
            done.append(licences.revoke(session, licence=licence_id, reason=why, actor=actor))
    return LicensesRevoked(revoked=done)
