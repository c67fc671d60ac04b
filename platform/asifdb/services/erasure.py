"""Erasure: a revoked licence's data physically removed from the platform, with a report that
checks it is gone.

Revocation takes a licence's pairs out of the model and keeps everything (it can be
restored); erasure removes the data itself, for good:

1. sample (where the server's files are readable): a few of the pairs' stored embeddings and
   captions as the exact bytes the server keeps, and search the table files for them now, so
   the later "absent" is a check that could have failed;
2. remove, in one transaction: every pair row of the licence (both embeddings, caption,
   source metadata) and what cascades from it (curation scores, review marks, re-encode
   staging), the job items of its sources, the hits of recorded retrievals that named its
   pairs, the link from predictions whose query image is one of its images; the licence
   becomes "erased" and each pair's registry row records when; the model version advances, so
   every process reloads its anchors in full (store.sync) before its next query; the licence's
   unfinished jobs are cancelled (their in-flight batches are waited for and erased too);
3. remove its images from the blob store, unless a pair of another licence holds the same
   bytes (blob_refs decides, atomically with every new reference);
4. rewrite the tables that held the data (VACUUM FULL: a plain vacuum leaves the dead tuples'
   bytes in the pages' free space, and index entries behind; measured), and checkpoint;
5. check and report: rows, bytes in the files, blobs, this process's model; what the
   platform cannot erase. The report is stored with the erasure and an audit event.

The database keeps the rules (migration 0010): a pair row is deleted only under an erased
licence with its registry row marked, a licence is erased only from revoked and never comes
back, no pair is added under an erased licence. Killed between 2 and 5, `erase` again resumes.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from asifdb.anchors.store import fetch_binary
from asifdb.blobs import BlobStore
from asifdb.db import relation_files, roles
from asifdb.db.models import Erasure, License
from asifdb.errors import Conflict, InvalidInput, NotFound
from asifdb.schemas.licenses import ErasureCheck, ErasurePreview, ErasureReport
from asifdb.services import audit, blob_refs, model

if TYPE_CHECKING:
    from asifdb.anchors.live import LiveModel
    from asifdb.context import Platform

# Tables that may hold a licence's data: rewritten after the removal, searched by the check.
REWRITTEN = roles.ERASURE_REWRITES
# Pairs whose stored bytes are searched for in the table files; patterns per pair.
SAMPLE_PAIRS = 24
_WINDOW = 16  # float16s per pattern (32 bytes): a chance match in other data is ~2^-256
_MIN_CAPTION_BYTES = 24

NOT_ERASED = (
    "Write-ahead log segments written before and during the erasure hold the removed rows "
    "(and full-page images of their pages) until the server recycles them, after the next two "
    "checkpoints at the latest (checkpoint_timeout, 5 min by default, or max_wal_size); an "
    "archive of WAL (archive_command) keeps them for as long as the archive is kept.",
    "Database backups and replicas made before the erasure hold the data until they are "
    "deleted or expire under their own retention; a streaming replica replays the erasure.",
    "Disk blocks freed when the tables were rewritten are no longer in any file, but the file "
    "system or SSD may keep their old contents until they are overwritten.",
    "Copies outside the platform: exports, downloads of images or captions, clients' caches, "
    "the original source files the pairs were ingested from.",
    "The audit log keeps, by design, that the licence existed and was revoked and erased, by "
    "whom, when and why, with the counts; pair ids and scores in recorded predictions remain "
    "as history (no caption, image or embedding). Job records keep their source's path.",
)


def _check(name: str, passed: bool, detail: str, **found: int | None) -> ErasureCheck:
    """One check that something is gone, with what it found (`found_before`, `found_after`)."""
    return ErasureCheck(name=name, passed=passed, detail=detail, **found)


def _report(**fields: Any) -> ErasureReport:
    """The report, with its verdict (every check passed, and there were checks) and what this
    platform cannot erase."""
    checks = fields.setdefault("checks", [])
    passed = bool(checks) and all(c.passed for c in checks)
    return ErasureReport(**fields, passed=passed, not_erased=list(NOT_ERASED))


def preview(session: Session, *, licence: str | int) -> ErasurePreview:
    lic = _licence(session, licence)
    pairs, images = session.execute(
        text("SELECT count(*), count(DISTINCT image_sha256) FROM pairs WHERE license_id = :l"),
        {"l": lic.id},
    ).one()
    predictions = session.execute(
        text(
            "SELECT count(DISTINCT e.prediction_id) FROM prediction_evidence e "
            "JOIN pair_registry r ON r.id = e.pair_id WHERE r.license_id = :l"
        ),
        {"l": lic.id},
    ).scalar_one()
    why_not = _why_not_erasable(lic)
    return ErasurePreview(
        license=lic.name,
        status=lic.status,
        pairs=pairs,
        images=images,
        predictions_with_evidence=predictions,
        erasable=why_not is None,
        why_not=why_not,
    )


def _why_not_erasable(lic: License) -> str | None:
    if lic.status == "active":
        return f"licence {lic.name!r} is active: revoke it first (erasure is for revoked ones)"
    if lic.status == "erased":
        return f"licence {lic.name!r} is already erased"
    return None


def _licence(session: Session, licence: str | int, *, lock: bool = False) -> License:
    column = License.id if isinstance(licence, int) else License.name
    query = select(License).where(column == licence)
    found = session.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise NotFound(f"no licence {licence!r}")
    return found


Progress = Callable[[str], None]


def erase(
    *,
    sessions: sessionmaker[Session],
    engine: Engine,
    blobs: BlobStore,
    licence: str | int,
    reason: str,
    actor: str,
    pgdata: Path | None = None,
    live: "LiveModel | None" = None,
    on_progress: Progress | None = None,
) -> ErasureReport:
    """Erase a revoked licence's data (irreversible) and return the checked report.

    `pgdata`: the server's data folder when this process can read it (the embedded server):
    the report then searches the table files for the erased bytes. `live`: this process's
    model, checked to hold none of the erased pairs. An erasure stopped after its removal
    committed is resumed (its pages rewritten and checked) by calling this again.
    """
    say = on_progress or (lambda _: None)
    if not reason or not reason.strip():
        raise InvalidInput("an erasure needs a reason (it is kept in the audit log)")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with sessions() as session:
        lic = _licence(session, licence)
        erasure = session.scalar(select(Erasure).where(Erasure.license_id == lic.id))
        if erasure is not None and erasure.status == "complete":
            raise Conflict(
                f"licence {lic.name!r} was erased at {erasure.finished_at}: see "
                f"`asifdb licenses erasure-report {lic.name}`"
            )
        if erasure is None and (why := _why_not_erasable(lic)) is not None:
            raise Conflict(why)
        licence_id, name = lic.id, lic.name
    sample: _Sample | None = None
    if erasure is None:
        if pgdata is not None:
            say("sampling the stored bytes and searching the table files for them")
            sample = _take_sample(sessions, engine, licence_id, pgdata)
            timings["sample_and_search_before"] = round(time.perf_counter() - started, 3)
        say("removing the pairs and what derives from them")
        mark = time.perf_counter()
        erasure_id = _remove(sessions, licence_id, reason=reason.strip(), actor=actor)
        timings["remove"] = round(time.perf_counter() - mark, 3)
    else:
        say("resuming an erasure whose removal committed earlier")
        erasure_id = erasure.id
    return _scrub_and_report(
        sessions, engine, blobs, erasure_id, name, sample, pgdata, live, say, timings
    )


def erase_on(
    platform: "Platform",
    *,
    licence: str | int,
    reason: str,
    actor: str,
    confirm: str | None = None,
    on_progress: Progress | None = None,
) -> ErasureReport:
    """`erase` with the platform's parts (what every adapter calls). `confirm`, when given,
    must be the licence's name: the caller typed it again."""
    if confirm is not None:
        with platform.sessions() as session:
            name = _licence(session, licence).name
        if confirm.strip() != name:
            raise InvalidInput(
                f"confirm = {confirm!r}: type the licence's name, {name!r}, to erase it"
            )
    return erase(
        sessions=platform.sessions,
        engine=platform.engine,
        blobs=platform.blobs,
        licence=licence,
        reason=reason,
        actor=actor,
        pgdata=platform.settings.readable_server_files,
        live=platform.live if "live" in platform.__dict__ else None,
        on_progress=on_progress,
    )


def report(session: Session, *, licence: str | int) -> ErasureReport:
    """The stored report of the licence's erasure (NotFound if it was not erased)."""
    lic = _licence(session, licence)
    erasure = session.scalar(select(Erasure).where(Erasure.license_id == lic.id))
    if erasure is None:
        raise NotFound(f"licence {lic.name!r} has not been erased")
    if erasure.report is None:
        return _bare_report(erasure)
    return ErasureReport.model_validate(erasure.report)


# --- 1. sample --------------------------------------------------------------------------------


@dataclass
class _Sample:
    patterns: dict[str, bytes]
    relations: list[relation_files.Relation]
    before: dict[str, list[str]]


def _window(vector: np.ndarray, at: float) -> bytes:
    start = max(0, min(int(len(vector) * at), len(vector) - _WINDOW))  # all of a short one
    # As the server stores it on this machine: little-endian float16s.
    return vector[start : start + _WINDOW].astype("<f2").tobytes()


def _take_sample(
    sessions: sessionmaker[Session], engine: Engine, licence_id: int, pgdata: Path
) -> _Sample:
    patterns: dict[str, bytes] = {}
    with sessions() as session:
        hnsw = session.execute(
            text(
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'pair_embeddings' AND "
                "indexdef ILIKE '%USING hnsw%'"
            )
        ).scalar_one()
        normalised = "l2_normalize(e.embedding)" if hnsw else "NULL::halfvec"
        rows = fetch_binary(
            session,
            # Every encoder's embeddings of the sampled pairs. Another licence's pair with the
            # same image (or caption) holds the same embedding, rightly: only values no other
            # licence shares are sampled.
            f"SELECT p.id, e.encoder, c.modality, e.embedding, {normalised}, "
            "EXISTS (SELECT FROM pairs o WHERE o.license_id <> p.license_id "
            "        AND o.image_sha256 = p.image_sha256), "
            "EXISTS (SELECT FROM pairs o WHERE o.license_id <> p.license_id "
            "        AND o.caption = p.caption) "
            "FROM (SELECT * FROM pairs WHERE license_id = %(l)s "
            "      AND EXISTS (SELECT FROM pair_embeddings x WHERE x.pair_id = pairs.id) "
            "      ORDER BY id LIMIT %(n)s) p "
            "JOIN pair_embeddings e ON e.pair_id = p.id JOIN encoders c ON c.name = e.encoder "
            "ORDER BY p.id, e.encoder",
            {"l": licence_id, "n": SAMPLE_PAIRS},
        )
        for pair_id, encoder, modality, vector, unit, image_shared, caption_shared in rows:
            name = f"pair {pair_id} {modality} embedding by {encoder}"
            if modality == "text":
                if not caption_shared:
                    patterns[name] = _window(vector, 0.5)
                continue
            if image_shared:
                continue
            for at in (0.25, 0.75):
                patterns[f"{name} @{at}"] = _window(vector, at)
            if unit is not None:
                patterns[f"{name}, normalised (HNSW)"] = _window(unit, 0.5)
        captions = session.execute(
            text(
                "SELECT p.id, p.caption FROM pairs p WHERE p.license_id = :l "
                "AND octet_length(p.caption) >= :min AND NOT EXISTS (SELECT FROM pairs o "
                "WHERE o.license_id <> :l AND strpos(o.caption, p.caption) > 0) "
                "ORDER BY p.id LIMIT :n"
            ),
            {"l": licence_id, "min": _MIN_CAPTION_BYTES, "n": SAMPLE_PAIRS},
        ).all()
        for pair_id, caption in captions:
            patterns[f"pair {pair_id} caption"] = caption.encode()
    with engine.connect() as conn:
        relations = relation_files.relations(conn, REWRITTEN)
        _checkpoint(conn)
    return _Sample(patterns, relations, relation_files.search(pgdata, relations, patterns))


def _checkpoint(conn: Any) -> None:
    """Dirty pages to the files, so a search of the files sees what the server holds."""
    conn.execute(text("CHECKPOINT"))
    conn.commit()


# --- 2. remove ------------------------------------------------------------------------------


def _count(session: Session, sql: str, licence_id: int) -> int:
    """A count of the licence's rows (`:l` in `sql` is the licence's id)."""
    return int(session.execute(text(sql), {"l": licence_id}).scalar_one())


def _remove(sessions: sessionmaker[Session], licence_id: int, *, reason: str, actor: str) -> int:
    with sessions.begin() as session:
        # Unfinished jobs of the licence: wait for their in-flight batches (a batch holds its
        # row from start to commit), then no batch of them starts again. Batches before the
        # licence, as ingestion takes them (no deadlock).
        session.execute(
            text(
                "SELECT b.id FROM job_batches b JOIN jobs j ON j.id = b.job_id "
                "WHERE j.license_id = :l AND NOT b.done AND NOT b.failed "
                "ORDER BY b.id FOR UPDATE OF b"
            ),
            {"l": licence_id},
        )
        lic = _licence(session, licence_id, lock=True)
        if (why := _why_not_erasable(lic)) is not None:
            raise Conflict(why)
        ids = "(SELECT id FROM pair_registry WHERE license_id = :l)"
        shas = "(SELECT DISTINCT image_sha256 FROM pairs WHERE license_id = :l)"
        removed = {
            "pairs": _count(
                session, "SELECT count(*) FROM pairs WHERE license_id = :l", licence_id
            ),
            "captions": _count(
                session, "SELECT count(caption) FROM pairs WHERE license_id = :l", licence_id
            ),
            "image_embeddings": _count(session, _EMBEDDINGS.format(modality="image"), licence_id),
            "text_embeddings": _count(session, _EMBEDDINGS.format(modality="text"), licence_id),
            "images": _count(session, f"SELECT count(*) FROM {shas} s", licence_id),
            "curation_scores": _count(
                session, f"SELECT count(*) FROM pair_fit WHERE pair_id IN {ids}", licence_id
            ),
            "near_duplicate_rows": _count(
                session, f"SELECT count(*) FROM near_duplicates WHERE pair_id IN {ids}", licence_id
            ),
            "review_marks": _count(
                session, f"SELECT count(*) FROM review_marks WHERE pair_id IN {ids}", licence_id
            ),
        }
        erasure = Erasure(
            license_id=licence_id,
            license_name=lic.name,
            reason=reason,
            erased_by=actor,
            model_version=0,
        )
        session.add(erasure)
        session.flush()
        removed["job_items"] = session.execute(
            text(
                "DELETE FROM job_items WHERE job_id IN (SELECT id FROM jobs WHERE license_id = :l)"
            ),
            {"l": licence_id},
        ).rowcount
        removed["jobs_cancelled"] = session.execute(
            text(
                "UPDATE jobs SET status = 'cancelled', finished_at = now(), "
                "error = 'its licence was erased' WHERE license_id = :l "
                "AND status NOT IN ('done', 'partial', 'failed', 'cancelled')"
            ),
            {"l": licence_id},
        ).rowcount
        session.execute(
            text(
                "UPDATE job_batches SET failed = true, finished_at = now(), "
                "error = 'its licence was erased' WHERE NOT done AND NOT failed "
                "AND job_id IN (SELECT id FROM jobs WHERE license_id = :l)"
            ),
            {"l": licence_id},
        )
        removed["retrieval_hits_redacted"] = _redact_retrievals(session, licence_id)
        removed["query_images_detached"] = session.execute(
            text(f"UPDATE predictions SET input_sha256 = NULL WHERE input_sha256 IN {shas}"),
            {"l": licence_id},
        ).rowcount
        shas_list = list(
            session.execute(text(f"SELECT image_sha256 FROM {shas} s"), {"l": licence_id}).scalars()
        )
        session.execute(
            text(
                "UPDATE pair_registry SET erased_at = now(), erasure_id = :e "
                "WHERE license_id = :l AND erased_at IS NULL"
            ),
            {"e": erasure.id, "l": licence_id},
        )
        lic.status = "erased"
        session.flush()
        session.execute(text("DELETE FROM pairs WHERE license_id = :l"), {"l": licence_id})
        # No usable pair leaves (they left at the revocation); the version marks the erasure,
        # which every process's anchors reload in full at.
        version = model.change_usable(
            session,
            change=f"erase licence {lic.name}: -{removed['pairs']} pairs (were revoked)",
            always=True,
        )
        erasure.model_version = version
        erasure.removed = {**removed, "blob_candidates": shas_list}
        audit.record(
            session,
            actor=actor,
            action="license.erase",
            target_type="license",
            target_id=str(licence_id),
            reason=reason,
            model_version=version,
            details={"name": lic.name, "erasure": erasure.id, "removed": removed},
        )
        return erasure.id


def _redact_retrievals(session: Session, licence_id: int) -> int:
    """Recorded retrievals keep their hits' ranks and scores; an erased pair's candidate (its
    caption, or its image's name) is blanked and marked erased."""
    erased = "(SELECT id::text FROM pair_registry WHERE license_id = :l)"
    hits = session.execute(
        text(
            f"""
            SELECT count(*) FROM predictions pr, jsonb_array_elements(pr.result->'hits') h
            WHERE pr.task LIKE 'retrieve%' AND h->>'pair_id' IN {erased}
            """
        ),
        {"l": licence_id},
    ).scalar_one()
    if hits:
        session.execute(
            text(
                f"""
                UPDATE predictions pr SET
                  predicted_label = CASE WHEN pr.result->'hits'->0->>'pair_id' IN {erased}
                                         THEN NULL ELSE pr.predicted_label END,
                  result = jsonb_set(pr.result, '{{hits}}', (
                    SELECT jsonb_agg(CASE WHEN h->>'pair_id' IN {erased}
                                     THEN h || '{{"candidate": null, "erased": true}}'::jsonb
                                     ELSE h END ORDER BY n)
                    FROM jsonb_array_elements(pr.result->'hits') WITH ORDINALITY AS t(h, n)))
                WHERE pr.task LIKE 'retrieve%' AND EXISTS (
                  SELECT FROM jsonb_array_elements(pr.result->'hits') h
                  WHERE h->>'pair_id' IN {erased})
                """
            ),
            {"l": licence_id},
        )
    return int(hits)


# --- 3-5. scrub and report ------------------------------------------------------------------


def _scrub_and_report(
    sessions: sessionmaker[Session],
    engine: Engine,
    blobs: BlobStore,
    erasure_id: int,
    name: str,
    sample: _Sample | None,
    pgdata: Path | None,
    live: "LiveModel | None",
    say: Progress,
    timings: dict[str, float],
) -> ErasureReport:
    with sessions() as session:
        erasure = session.get_one(Erasure, erasure_id)
        removed = dict(erasure.removed)
        licence_id = erasure.license_id
    candidates: list[str] = removed.pop("blob_candidates", [])

    say(f"removing {len(candidates)} images from the blob store (unless other pairs hold them)")
    mark = time.perf_counter()
    removal = blob_refs.remove_unreferenced(sessions, blobs, candidates)
    removed["blobs_removed"], removed["blobs_kept_shared"] = removal.removed, removal.kept
    timings["blobs"] = round(time.perf_counter() - mark, 3)

    say("rewriting the tables that held the data (VACUUM FULL) and checkpointing")
    mark = time.perf_counter()
    with engine.connect() as conn:
        before_nodes = {r.name: r.filenode for r in relation_files.relations(conn, REWRITTEN)}
        conn.commit()
        auto = conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in REWRITTEN:
            auto.execute(text(f"VACUUM (FULL, ANALYZE) {table}"))
        auto.execute(text("CHECKPOINT"))
    timings["rewrite"] = round(time.perf_counter() - mark, 3)

    say("checking that it is gone")
    mark = time.perf_counter()
    checks = _row_checks(sessions, licence_id)
    checks += _blob_checks(sessions, blobs, candidates)
    with engine.connect() as conn:
        after = relation_files.relations(conn, REWRITTEN)
    checks.append(_bytes_check(sample, pgdata, after, before_nodes))
    checks.append(_model_check(sessions, live, licence_id))
    timings["checks"] = round(time.perf_counter() - mark, 3)

    with sessions.begin() as session:
        erasure = session.get_one(Erasure, erasure_id, with_for_update=True)
        result = _report(
            license=name,
            erasure_id=erasure.id,
            status="complete",
            reason=erasure.reason,
            erased_by=erasure.erased_by,
            started_at=erasure.started_at,
            finished_at=session.execute(select(func.now())).scalar_one(),
            model_version=erasure.model_version,
            removed=removed,
            checks=checks,
            seconds=timings,
        )
        erasure.status, erasure.finished_at = "complete", result.finished_at
        erasure.removed = removed
        erasure.report = result.model_dump(mode="json")
        audit.record(
            session,
            actor=erasure.erased_by,
            action="license.erasure_report",
            target_type="license",
            target_id=str(licence_id),
            model_version=erasure.model_version,
            details={
                "name": name,
                "erasure": erasure.id,
                "passed": result.passed,
                "checks": {c.name: c.passed for c in checks},
                "removed": removed,
            },
        )
    with engine.connect() as conn:  # the blob hashes kept for a resume leave the row's pages
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM FULL erasures"))
    return result


# A licence's pairs' embeddings of one modality, by every encoder.
_EMBEDDINGS = (
    "SELECT count(*) FROM pair_embeddings e JOIN encoders c ON c.name = e.encoder "
    "WHERE c.modality = '{modality}' AND e.pair_id IN (SELECT id FROM pairs WHERE license_id = :l)"
)

_ROW_CHECKS = {
    "no pair row of the licence": "SELECT count(*) FROM pairs WHERE license_id = :l",
    "every registry row of the licence marked erased": (
        "SELECT count(*) FROM pair_registry WHERE license_id = :l AND erased_at IS NULL"
    ),
    "no embedding (by any encoder), curation score, near-duplicate row or review mark": (
        "SELECT (SELECT count(*) FROM pair_embeddings WHERE pair_id IN {ids})"
        " + (SELECT count(*) FROM pair_fit WHERE pair_id IN {ids})"
        " + (SELECT count(*) FROM near_duplicates WHERE pair_id IN {ids})"
        " + (SELECT count(*) FROM review_marks WHERE pair_id IN {ids})"
    ),
    "no job item of the licence's sources": (
        "SELECT count(*) FROM job_items WHERE job_id IN (SELECT id FROM jobs WHERE license_id = :l)"
    ),
    "no recorded retrieval naming an erased pair's caption or image": (
        "SELECT count(*) FROM predictions pr, jsonb_array_elements(pr.result->'hits') h "
        "WHERE pr.task LIKE 'retrieve%' AND h->>'pair_id' IN (SELECT id::text FROM "
        "pair_registry WHERE license_id = :l) AND h->>'candidate' IS NOT NULL"
    ),
    "no evidence row showing a caption of the licence": (
        "SELECT count(*) FROM prediction_provenance WHERE license_id = :l AND caption IS NOT NULL"
    ),
}


def _row_checks(sessions: sessionmaker[Session], licence_id: int) -> list[ErasureCheck]:
    ids = "(SELECT id FROM pair_registry WHERE license_id = :l)"
    checks = []
    with sessions() as session:
        for name, sql in _ROW_CHECKS.items():
            left = _count(session, sql.format(ids=ids), licence_id)
            checks.append(_check(name, left == 0, f"{left} rows found", found_after=left))
    return checks


def _blob_checks(
    sessions: sessionmaker[Session], blobs: BlobStore, candidates: list[str]
) -> list[ErasureCheck]:
    present = [sha for sha in candidates if blobs.exists(sha)]
    with sessions() as session:
        held = blob_refs.referenced(session, present)
    unheld = [sha for sha in present if sha not in held]
    return [
        _check(
            "the licence's images absent from the blob store",
            not unheld,
            f"{len(candidates) - len(present)} of {len(candidates)} absent; {len(present)} kept "
            f"because a pair of another licence holds the same bytes"
            + (f"; {len(unheld)} present with no holder" if unheld else ""),
            found_before=len(candidates),
            found_after=len(unheld),
        )
    ]


def _bytes_check(
    sample: _Sample | None,
    pgdata: Path | None,
    after: list[relation_files.Relation],
    before_nodes: dict[str, int],
) -> ErasureCheck:
    name = "the erased bytes absent from the table files"
    if sample is not None and pgdata is not None:
        found_after = relation_files.search(pgdata, after, sample.patterns)
        before = sorted({k for keys in sample.before.values() for k in keys})
        still = sorted({k for keys in found_after.values() for k in keys})
        where = ", ".join(f"{rel}: {len(keys)}" for rel, keys in found_after.items() if keys)
        found_where = ", ".join(f"{rel}: {len(k)}" for rel, k in sample.before.items() if k)
        return _check(
            name,
            not still and bool(before),
            f"{len(sample.patterns)} byte patterns sampled from {SAMPLE_PAIRS} pairs at most "
            f"(embeddings as stored, captions); before the erasure {len(before)} were found "
            f"({found_where or 'none'}), after it {len(still)}"
            + (f" ({where})" if where else "")
            + f"; {len(after)} relation files searched",
            found_before=len(before),
            found_after=len(still),
        )
    rewritten = [r.name for r in after if before_nodes.get(r.name) not in (None, r.filenode)]
    return _check(
        name,
        len(rewritten) == len(after),
        "the server's files are not readable by this process: shown by the server instead, "
        f"{len(rewritten)} of {len(after)} relations were rewritten into new files "
        "(VACUUM FULL; the old files are removed)",
    )


def _model_check(
    sessions: sessionmaker[Session], live: "LiveModel | None", licence_id: int
) -> ErasureCheck:
    name = "the model in every process without the erased pairs"
    others = (
        "every other process reloads its anchors in full from the database before its next "
        "query at the erasure's version or later (anchors.store.sync)"
    )
    if live is None:
        return _check(name, True, f"no model in this process; {others}")
    with sessions() as session:
        erased = np.array(
            session.execute(
                text("SELECT id FROM pair_registry WHERE license_id = :l"), {"l": licence_id}
            )
            .scalars()
            .all(),
            dtype=np.int64,
        )
    with sessions() as session, session.begin():
        session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        view = live.view(session)
    held = int(np.isin(erased, view.anchors.ids).sum())
    return _check(
        name,
        held == 0,
        f"this process's model (version {view.version}, {len(view.anchors.ids)} rows held) "
        f"holds {held} of the {len(erased)} erased pairs; {others}",
        found_after=held,
    )


def _bare_report(erasure: Erasure) -> ErasureReport:
    removed = {k: v for k, v in erasure.removed.items() if k != "blob_candidates"}
    return _report(
        license=erasure.license_name,
        erasure_id=erasure.id,
        status=erasure.status,
        reason=erasure.reason,
        erased_by=erasure.erased_by,
        started_at=erasure.started_at,
        finished_at=erasure.finished_at,
        model_version=erasure.model_version,
        removed=removed,
    )
