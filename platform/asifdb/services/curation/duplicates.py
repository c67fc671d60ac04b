"""Near-duplicate images: groups of usable pairs whose images are nearly the same, with a
suggested keeper."""

import time

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from asifdb.anchors.live import LiveModel
from asifdb.engine import curation as math
from asifdb.errors import InvalidInput
from asifdb.schemas.curation import (
    DuplicateGroup,
    Duplicates,
    DuplicatesRefreshed,
    GroupMember,
)
from asifdb.services.curation.listing import PAIR_COLUMNS, check_page, exact_index, model_view

# Image cosine at or above which two pairs are near-duplicates. On the 20,000-pair default
# collection (docs/results-curation.md) the median copy (re-encoded JPEG 0.92, 90 % crop 0.90,
# 2x resize 0.98) is above it, while 99 % of images have their nearest other image below 0.84:
# at 0.86, 96 % of inserted copies are grouped with their original and 88 of the 20,000
# originals have a neighbour above it.
DUPLICATE_THRESHOLD = 0.86
DUPLICATE_NEIGHBOURS = 8


def refresh_duplicates(
    session: Session,
    *,
    live: LiveModel,
    threshold: float = DUPLICATE_THRESHOLD,
    neighbours: int = DUPLICATE_NEIGHBOURS,
    batch: int = 4096,
) -> DuplicatesRefreshed:
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
    view = model_view(session, live, least=2)
    image = view.image_anchors()
    index = exact_index(image, live)
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
    return DuplicatesRefreshed(
        model_version=view.version,
        usable_pairs=n,
        threshold=threshold,
        groups=int(len(np.unique(group[members]))),
        pairs_in_groups=int(len(members)),
        seconds=round(time.perf_counter() - started, 2),
    )


def duplicates(session: Session, *, limit: int = 20, offset: int = 0) -> Duplicates:
    """Groups of near-duplicate usable pairs, most similar first (one page of groups)."""
    check_page(limit, offset)
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
    members: dict[int, list[GroupMember]] = {}
    for row in session.execute(
        text(
            f"SELECT d.group_id, {PAIR_COLUMNS}, d.cosine, d.keeper, f.fit "
            "FROM near_duplicates d JOIN usable_pairs u ON u.id = d.pair_id "
            "JOIN licenses l ON l.id = u.license_id "
            "LEFT JOIN review_marks r ON r.pair_id = u.id "
            "LEFT JOIN pair_fit f ON f.pair_id = u.id "
            "WHERE d.group_id = ANY(:groups) ORDER BY d.keeper DESC, u.id"
        ),
        {"groups": [g["group_id"] for g in out]},
    ).mappings():
        member = dict(row)
        members.setdefault(member.pop("group_id"), []).append(GroupMember(**member))
    total = session.execute(
        text(
            "SELECT count(*) FROM (SELECT d.group_id FROM near_duplicates d "
            "JOIN usable_pairs u ON u.id = d.pair_id GROUP BY d.group_id HAVING count(*) > 1) g"
        )
    ).scalar_one()
    return Duplicates(
        groups=[DuplicateGroup(**g, pairs=members.get(g["group_id"], [])) for g in out],
        total_groups=total,
    )
