"""Pair use cases: read one with its provenance, delete one (its embeddings and bytes go)."""

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from asifdb.blobs import BlobStore, sha256_of_uri
from asifdb.db.models import Job, License, Pair, PairEmbedding, PredictionEvidence
from asifdb.errors import Conflict, NotFound
from asifdb.schemas.pairs import Pair as PairOut
from asifdb.schemas.pairs import PairLicense, Provenance
from asifdb.services import audit, blob_refs, model


def get(session: Session, *, pair_id: int) -> PairOut:
    """A pair with its provenance, its licence, and how often it carried a prediction."""
    row = session.execute(
        select(Pair, License).join(License, License.id == Pair.license_id).where(Pair.id == pair_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no pair {pair_id}")
    pair, lic = row
    usable = (
        session.execute(text("SELECT 1 FROM usable_pairs WHERE id = :p"), {"p": pair_id}).first()
        is not None
    )
    job = session.get(Job, pair.job_id) if pair.job_id else None
    evidence = session.scalar(
        select(func.count())
        .select_from(PredictionEvidence)
        .where(PredictionEvidence.pair_id == pair_id)
    )
    return PairOut(
        id=pair.id,
        caption=pair.caption,
        collection=pair.collection,
        status=pair.status,
        status_reason=pair.status_reason,
        usable=usable,
        image_sha256=pair.image_sha256,
        width=pair.width,
        height=pair.height,
        blob_uri=pair.blob_uri,
        embedded_by=list(
            session.scalars(
                select(PairEmbedding.encoder)
                .where(PairEmbedding.pair_id == pair.id)
                .order_by(PairEmbedding.encoder)
            )
        ),
        provenance=Provenance(
            source_uri=pair.source_uri,
            source_key=pair.source_key,
            metadata=pair.source_metadata,
            job_id=pair.job_id,
            job_source=job.source if job else None,
            added_by=pair.added_by,
            added_at=pair.added_at,
        ),
        license=PairLicense(
            id=lic.id,
            name=lic.name,
            status=lic.status,
            holder=lic.holder,
            terms_url=lic.terms_url,
        ),
        deleted_at=pair.deleted_at,
        deleted_by=pair.deleted_by,
        evidence_count=evidence or 0,
    )


def delete(session: Session, *, pair_id: int, actor: str, reason: str | None = None) -> str | None:
    """Soft-delete a pair: embeddings cleared, it leaves the model now (a new version); its
    evidence rows stay as history. Returns the blob hash to remove once this commits, if no
    other live pair still uses the same bytes."""
    pair = session.scalar(select(Pair).where(Pair.id == pair_id).with_for_update())
    if pair is None:
        raise NotFound(f"no pair {pair_id}")
    if pair.deleted_at is not None:
        raise Conflict(f"pair {pair_id} was already deleted at {pair.deleted_at}")
    was_usable = (
        session.execute(text("SELECT 1 FROM usable_pairs WHERE id = :p"), {"p": pair_id}).first()
        is not None
    )
    blob = pair.blob_uri
    session.execute(
        update(Pair)
        .where(Pair.id == pair_id)
        .values(
            deleted_at=func.now(),
            deleted_by=actor,
            blob_uri=None,
            status_reason=reason,
        )
    )
    session.execute(text("DELETE FROM pair_embeddings WHERE pair_id = :p"), {"p": pair_id})
    # Always a version: a named model may hold a pair the default does not (services/models.py),
    # and each model's copy in every process re-syncs at a new version only.
    version = model.change_usable(
        session,
        change=f"delete pair {pair_id}",
        leaving=[pair_id] if was_usable else [],
        always=True,
    )
    audit.record(
        session,
        actor=actor,
        action="pair.delete",
        target_type="pair",
        target_id=str(pair_id),
        reason=reason,
        model_version=version,
        # Ids only: the log is append-only, so it must never hold a licence's content.
        details={"license_id": pair.license_id},
    )
    if blob is None:
        return None
    shared = session.scalar(
        select(func.count()).select_from(Pair).where(Pair.blob_uri == blob, Pair.id != pair_id)
    )
    return None if shared else sha256_of_uri(blob)


def remove_blob(sessions: sessionmaker[Session], blobs: BlobStore, sha256: str | None) -> None:
    """After the delete committed: the original bytes go too, unless a pair or a prediction
    has come to reference them meanwhile (`blob_refs`)."""
    blob_refs.remove_if_unreferenced(sessions, blobs, sha256)
