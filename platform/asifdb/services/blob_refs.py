"""Blob lifecycle: a blob leaves the store only when no row references it, decided atomically
with every change of its references.

Every transaction that adds a reference to a blob (an ingestion batch inserting pairs, a
recorded prediction keeping its query image) first takes a shared lock on the blob's hash
(`hold`) and, holding it, makes sure the file is there; removal (`remove_if_unreferenced`) takes
the same lock exclusively, and only then counts the references and unlinks. So a removal and a
new reference to the same bytes are ordered: either the removal sees the new reference and
keeps the file, or it runs first and the new reference's transaction writes the file again.
The locks are PostgreSQL transaction-level advisory locks, released at commit or rollback.
"""

from collections.abc import Iterable

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from asifdb.blobs import BlobStore, blob_uri
from asifdb.db.models import Pair, Prediction

# The first key of the two-key advisory locks this module takes ("asif" in ASCII).
_NAMESPACE = 0x61736966


def hold(session: Session, sha256s: Iterable[str]) -> None:
    """In a transaction about to reference these blobs: no removal of them until it ends."""
    shas = sorted(set(sha256s))  # one order for every taker: no deadlock between batches
    if shas:
        session.execute(
            text(
                "SELECT pg_advisory_xact_lock_shared(:ns, hashtext(s)) "
                "FROM unnest(CAST(:shas AS text[])) AS s ORDER BY s"
            ),
            {"ns": _NAMESPACE, "shas": shas},
        )


def referenced(session: Session, sha256: str) -> bool:
    """A live pair keeps the blob as its image, or a prediction as its query image."""
    pairs = select(func.count()).select_from(Pair).where(Pair.blob_uri == blob_uri(sha256))
    kept = select(func.count()).select_from(Prediction).where(Prediction.input_sha256 == sha256)
    return bool(session.scalar(pairs) or session.scalar(kept))


def remove_if_unreferenced(
    sessions: sessionmaker[Session], blobs: BlobStore, sha256: str | None
) -> bool:
    """After the change that dropped a reference committed: remove the blob if nothing
    references it any more. Returns whether it was removed."""
    if sha256 is None:
        return False
    with sessions.begin() as session:
        session.execute(
            text("SELECT pg_advisory_xact_lock(:ns, hashtext(:sha))"),
            {"ns": _NAMESPACE, "sha": sha256},
        )
        if referenced(session, sha256):
            return False
        return blobs.delete(sha256)
