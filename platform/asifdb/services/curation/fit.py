"""Mismatched captions: each usable pair's caption fit, leave-one-out, in the collection's
alignment of its modalities (or the encoders' spaces below its size); the worst-fitting list."""

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from asifdb import engine
from asifdb.anchors.live import LiveModel, View
from asifdb.engine import curation as math
from asifdb.errors import InvalidInput
from asifdb.schemas.curation import FitRefreshed, FitStatus, Mismatch, Mismatches
from asifdb.services import model
from asifdb.services.curation.listing import (
    PAIR_COLUMNS,
    check_k_p,
    check_page,
    exact_index,
    model_view,
)

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


def refresh_fit(
    session: Session,
    *,
    live: LiveModel,
    k: int | None = None,
    p: float | None = None,
    full: bool = False,
    batch: int = FIT_BATCH,
    seed: int = 0,
) -> FitRefreshed:
    """Score how well each usable pair's caption fits its image, leave-one-out, in the
    collection's alignment of its modalities once it is large enough (`aligned` in the result),
    with k and p as given or else FIT_K and the space's FIT_P (both in the result).

    Incremental: only usable pairs without a score are scored (new pairs, or every pair with
    `full`), each in a batch filled up with randomly chosen scored pairs to compare with; the
    other scores keep the model version they were computed at (`fit_status` says how far the
    model has moved since). Each row is written in this transaction.
    """
    check_k_p(FIT_K if k is None else k, FIT_P[False] if p is None else p)
    if batch < 3:
        raise InvalidInput(f"batch = {batch}: use at least 3")
    started = time.perf_counter()
    view = model_view(session, live, least=3)
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
        indexes = exact_index(image, live), exact_index(caption, live)
        fits = fit_batches(*indexes, image, caption, targets, k=k, p=p, batch=batch, seed=seed)
        _write_fit(session, view, fits, {"aligned": aligned, "k": k, "p": p})
    return FitRefreshed(
        model_version=view.version,
        usable_pairs=n,
        scored=int(len(targets)),
        aligned=aligned,
        k=k,
        p=p,
        seconds=round(time.perf_counter() - started, 2),
    )


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


def fit_status(session: Session) -> FitStatus:
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
    return FitStatus(
        model_version=current,
        usable_pairs=row.usable,
        scored=row.scored,
        unscored=row.usable - row.scored,
        oldest_score_version=row.oldest,
        pairs_changed_since_oldest=changed,
        scored_in={
            SPACES[True]: row.aligned,
            SPACES[False]: row.encoders,
            "not recorded (before 2026-12-02)": row.unknown,
        },
        # Rows of more than one space (or unrecorded ones beside others) are not comparable:
        # the collection crossed the alignment's size since they were scored. Rescore with full.
        mixed_spaces=sum(1 for c in (row.aligned, row.encoders, row.unknown) if c) > 1,
    )


def mismatches(session: Session, *, limit: int = 50, offset: int = 0) -> Mismatches:
    """Usable pairs whose caption fits their image worst, lowest fit first (one page)."""
    check_page(limit, offset)
    rows = session.execute(
        text(
            f"SELECT {PAIR_COLUMNS}, f.fit, f.score, f.margin, f.rank, f.compared, "
            "f.model_version, f.aligned, f.k, f.p "
            "FROM pair_fit f JOIN usable_pairs u ON u.id = f.pair_id "
            "JOIN licenses l ON l.id = u.license_id "
            "LEFT JOIN review_marks r ON r.pair_id = u.id "
            "ORDER BY f.fit, f.pair_id LIMIT :limit OFFSET :offset"
        ),
        {"limit": limit, "offset": offset},
    ).mappings()
    items = [Mismatch(**r) for r in rows]
    return Mismatches(items=items, **fit_status(session).model_dump())
