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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from asifdb.blobs import BlobStore, blob_uri, sha256_of_uri
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


def referenced(session: Session, sha256s: Sequence[str]) -> set[str]:
    """Those of the blobs a live pair keeps as its image, or a prediction as its query image
    (two index probes per blob: `ix_pairs_blob_uri`, `ix_predictions_input_sha256`)."""
    uris = [blob_uri(sha) for sha in sha256s]
    held = {
        sha256_of_uri(uri)
        for uri in session.scalars(select(Pair.blob_uri).where(Pair.blob_uri.in_(uris)))
    }
    held.update(
        session.scalars(
            select(Prediction.input_sha256).where(Prediction.input_sha256.in_(list(sha256s)))
        )
    )
    return held


def remove_if_unreferenced(
    sessions: sessionmaker[Session], blobs: BlobStore, sha256: str | None
) -> bool:
    """After the change that dropped a reference committed: remove the blob if nothing
    references it any more. Returns whether it was removed."""
    if sha256 is None:
        return False
    return remove_unreferenced(sessions, blobs, [sha256]).removed == 1


@dataclass(frozen=True)
class Removal:
    removed: int  # unlinked now
    kept: int  # still referenced, left in the store
    absent: int  # neither referenced nor in the store (already gone)


def remove_unreferenced(
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    sha256s: Iterable[str],
    *,
    chunk: int = 1000,
) -> Removal:
    """Remove every one of the blobs that nothing references once the changes that dropped
    their references have committed; `chunk` blobs per transaction, each locked exclusively
    (in one order, as `hold` takes them) before its references are counted."""
    shas = sorted(set(sha256s))
    removed = kept = absent = 0
    for start in range(0, len(shas), chunk):
        part = shas[start : start + chunk]
        with sessions.begin() as session:
            session.execute(
                text(
                    "SELECT pg_advisory_xact_lock(:ns, hashtext(s)) "
                    "FROM unnest(CAST(:shas AS text[])) AS s ORDER BY s"
                ),
                {"ns": _NAMESPACE, "shas": part},
            )
            held = referenced(session, part)
            for sha in part:
                if sha in held:
                    kept += blobs.exists(sha)
                elif blobs.delete(sha):
                    removed += 1
                else:
                    absent += 1
    return Removal(removed, kept, absent)
