"""Acting on pairs: the review queue (mark, unmark), reject and restore (the model changes),
revoke the licences of pairs."""

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from asifdb.errors import Conflict, InvalidInput, NotFound
from asifdb.schemas.curation import (
    LicensesRevoked,
    Marked,
    Rejected,
    Restored,
    Review,
    Reviews,
    Unmarked,
)
from asifdb.services import audit, licences, model
from asifdb.services.curation.listing import check_page


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


def mark(session: Session, *, pair_ids: list[int], actor: str, reason: str | None = None) -> Marked:
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
    audit.record_each(
        session,
        actor=actor,
        action="pair.mark_review",
        target_type="pair",
        target_ids=sorted(marked),
        reason=reason,
    )
    return Marked(marked=len(marked), already_marked=len(ids) - len(marked))


def unmark(session: Session, *, pair_ids: list[int], actor: str) -> Unmarked:
    """Take pairs off the review queue."""
    ids = _ids(pair_ids)
    gone = list(
        session.execute(
            text("DELETE FROM review_marks WHERE pair_id = ANY(:ids) RETURNING pair_id"),
            {"ids": ids},
        ).scalars()
    )
    audit.record_each(
        session,
        actor=actor,
        action="pair.unmark_review",
        target_type="pair",
        target_ids=sorted(gone),
    )
    return Unmarked(unmarked=len(gone))


def reviews(session: Session, *, limit: int = 50, offset: int = 0) -> Reviews:
    """The review queue: marked pairs, oldest mark first, with their state and fit."""
    check_page(limit, offset)
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
    return Reviews(items=[Review(**r) for r in rows], total=total)


def reject(session: Session, *, pair_ids: list[int], actor: str, reason: str | None) -> Rejected:
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
    version = model.change_usable(  # always a version: see services/pairs.py delete
        session,
        change=f"reject {len(leaving)} pairs: -{len(leaving)}",
        leaving=leaving,
        always=True,
    )
    audit.record_each(
        session,
        actor=actor,
        action="pair.reject",
        target_type="pair",
        target_ids=todo,
        reason=why,
        model_version=version,
    )
    return Rejected(
        rejected=len(todo),
        already_rejected=len(ids) - len(todo),
        pairs_removed=len(leaving),
        model_version=version or model.current_version(session),
    )


def restore(
    session: Session, *, pair_ids: list[int], actor: str, reason: str | None = None
) -> Restored:
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
    version = model.change_usable(  # always a version: see services/pairs.py delete
        session,
        change=f"restore {len(returning)} rejected pairs",
        returning=returning,
        always=True,
    )
    audit.record_each(
        session,
        actor=actor,
        action="pair.restore",
        target_type="pair",
        target_ids=todo,
        reason=reason,
        model_version=version,
    )
    return Restored(
        restored=len(todo),
        pairs_returned=len(returning),
        model_version=version or model.current_version(session),
    )


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
