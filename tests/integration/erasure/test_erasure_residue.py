"""Where an erased pair could linger besides its row: another process's model (its anchors,
indexes and caption caches), the HNSW index's normalised copies of the embeddings, curation
scores, near-duplicate groups, review marks, a re-encode's staged embeddings, a kept query
image that is the licence's image. Each is first shown to hold the licence's data (so each
check can fail), then shown not to."""

import gc
from pathlib import Path

import numpy as np
import torch
from sqlalchemy import text

from asifdb.anchors import ann_index
from asifdb.anchors.live import LiveModel
from asifdb.anchors.store import fetch_binary
from asifdb.context import Platform
from asifdb.db.session import make_engine
from asifdb.services import curation, reencode
from tests.conftest import server_folder, setup_url
from tests.integration.erasure.conftest import (
    GONE,
    N,
    anchor_image,
    byte_patterns,
    cat_image,
    classify_one,
    database_files,
    erase_gone,
    pairs_found,
    revoke_gone,
)


def _vectors(platform: Platform) -> dict[int, np.ndarray]:
    """The erased licence's embeddings, unit length, by width: images whose bytes no other
    licence holds, and every caption."""
    with platform.sessions() as session:
        rows = fetch_binary(
            session,
            "SELECT p.image_embedding, p.text_embedding, EXISTS (SELECT FROM pairs o "
            "WHERE o.license_id <> p.license_id AND o.image_sha256 = p.image_sha256) "
            "FROM usable_pairs p JOIN licenses l ON l.id = p.license_id WHERE l.name = %(n)s",
            {"n": GONE},
        )
    images = [np.asarray(i, dtype=np.float32) for i, _, shared in rows if not shared]
    texts = [np.asarray(t, dtype=np.float32) for _, t, _ in rows]
    out = {}
    for group in (images, texts):
        stacked = np.stack(group)
        out[stacked.shape[1]] = stacked / np.linalg.norm(stacked, axis=1, keepdims=True)
    return out


def _reachable_matrices(root: object) -> list[np.ndarray]:
    """Every 2-d float array or tensor reachable from `root` through the platform's objects
    and plain containers (what a model holds in memory, wherever it keeps it)."""
    seen: set[int] = set()
    found: list[np.ndarray] = []
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            if obj.ndim == 2 and obj.is_floating_point():
                found.append(obj.detach().float().numpy())
            continue
        if isinstance(obj, np.ndarray):
            if obj.ndim == 2 and obj.dtype.kind == "f":
                found.append(np.asarray(obj, dtype=np.float32))
            continue
        module = type(obj).__module__
        if isinstance(obj, dict | list | tuple | set | frozenset) or module.startswith(
            ("asifdb", "collections")
        ):
            stack.extend(gc.get_referents(obj))
    return found


def _holds(live: LiveModel, vectors: dict[int, np.ndarray]) -> int:
    """How many of the vectors `live` holds a copy of, anywhere (cosine ≥ 0.995)."""
    held = 0
    for matrix in _reachable_matrices(live):
        erased = vectors.get(matrix.shape[1])
        if erased is None or not len(matrix):
            continue
        rows = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        held += int(((rows @ erased.T).max(axis=0) >= 0.995).sum())
    return held


def _hnsw_patterns(platform: Platform) -> dict[int, list[bytes]]:
    """The erased images' normalised embeddings as the HNSW index stores them (float16)."""
    with platform.sessions() as session:
        rows = fetch_binary(
            session,
            "SELECT p.id, l2_normalize(p.image_embedding) FROM usable_pairs p "
            "JOIN licenses l ON l.id = p.license_id WHERE l.name = %(n)s AND NOT EXISTS "
            "(SELECT FROM pairs o WHERE o.license_id <> p.license_id "
            " AND o.image_sha256 = p.image_sha256)",
            {"n": GONE},
        )
    return {pid: [np.asarray(u).astype("<f2")[500:516].tobytes()] for pid, u in rows}


def test_no_model_in_any_process_and_no_index_page_keeps_an_erased_pair(
    platform: Platform, db_url: str, shared_data: Path
) -> None:
    setup = make_engine(setup_url(db_url))  # an index is schema: the set-up role builds it
    ann_index.build(setup, ann_index.BuildParams(m=8, ef_construction=32, workers=0))
    setup.dispose()
    other = LiveModel()  # another process's model (the UI's, a second API worker's)
    for live in (platform.live, other):
        classify_one(platform, cat_image(shared_data), live=live)  # anchors, caches, indexes
    vectors, normalised = _vectors(platform), _hnsw_patterns(platform)
    assert _holds(other, vectors) >= len(vectors[384]) and _holds(platform.live, vectors)
    assert pairs_found(database_files(db_url), normalised) == set(normalised)  # in the index
    revoke_gone(platform)

    report = erase_gone(platform, server_folder(db_url))

    assert report.passed, [c for c in report.checks if not c.passed]
    # Another process's model drops them at its next query (it sees the erasure's version).
    classify_one(platform, cat_image(shared_data), live=other)
    assert _holds(other, vectors) == 0
    assert _holds(platform.live, vectors) == 0
    # The HNSW index was rebuilt with the table: none of its pages keeps a normalised copy.
    assert pairs_found(database_files(db_url), normalised) == set()
    with platform.engine.connect() as conn:
        assert ann_index.status(conn).state == "ready"


def _residue(platform: Platform) -> dict[str, int]:
    """The licence's rows in each table that derives from pairs (by registry id)."""
    ids = (
        "(SELECT r.id FROM pair_registry r JOIN licenses l ON l.id = r.license_id "
        "WHERE l.name = :n)"
    )
    with platform.engine.connect() as conn:
        return {
            table: conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE pair_id IN {ids}"), {"n": GONE}
            ).scalar_one()
            for table in ("pair_fit", "near_duplicates", "review_marks", "pair_embeddings")
        }


def test_curation_rows_every_encoders_embeddings_and_kept_query_images_go_with_the_licence(
    platform: Platform, db_url: str, shared_data: Path
) -> None:
    with platform.sessions.begin() as session:
        curation.refresh_fit(session, live=platform.live, k=5, p=8.0)
    with platform.sessions.begin() as session:
        curation.refresh_duplicates(session, live=platform.live)  # the shared image: a group
    with platform.sessions.begin() as session:
        ids = session.execute(
            text("SELECT id FROM pairs ORDER BY id LIMIT 3")  # the withdrawn licence's first
        ).scalars()
        curation.mark(session, pair_ids=list(ids), actor="annotator", reason="check")
        # Embeddings by an encoder the model does not use (of another width), as another
        # model's would be, one of its own for each pair: they go with the licence too.
        session.execute(
            text(
                "INSERT INTO encoders (name, modality, dim) VALUES ('other-image', 'image', 32); "
                "INSERT INTO pair_embeddings (pair_id, encoder, dim, embedding) "
                "SELECT id, 'other-image', 32, CAST(CAST(ARRAY(SELECT (id * 37 + g) % 997 / 7.0 "
                "FROM generate_series(1, 32) g) AS real[]) AS halfvec) FROM pairs"
            )
        )
        job = reencode.start(
            session,
            image_encoder=platform.encoders.image.name,
            text_encoder=platform.encoders.text.name,
            actor="admin",
            batch_size=N // 2,
        )
        batches = reencode.BATCHES.pending(session, job.id)
    encoders_for = lambda image, text_: platform.encoders  # noqa: E731
    reencode.process_batch(
        sessions=platform.sessions,
        blobs=platform.blobs,
        encoders_for=encoders_for,
        batch_id=batches[0],
    )  # half the withdrawn licence's pairs staged; the re-encode is still running
    # Queries whose image is one of the licence's images (one only it holds, one the other
    # licence holds too), and one that is not.
    theirs = classify_one(platform, anchor_image(shared_data, 1))
    shared = classify_one(platform, anchor_image(shared_data, 0))
    ours = classify_one(platform, cat_image(shared_data))
    before = _residue(platform)
    assert all(before.values()), before
    gone_bytes = byte_patterns(platform, GONE)
    with platform.engine.connect() as conn:
        query_images = dict(
            conn.execute(
                text("SELECT id, input_sha256 FROM predictions WHERE id IN (:a, :b, :c)"),
                {"a": theirs, "b": ours, "c": shared},
            ).all()
        )
    revoke_gone(platform)

    report = erase_gone(platform, server_folder(db_url))

    assert report.passed, [c for c in report.checks if not c.passed]
    assert _residue(platform) == dict.fromkeys(before, 0)
    assert report.removed["query_images_detached"] == 2
    assert pairs_found(database_files(db_url), gone_bytes) == set()
    with platform.engine.connect() as conn:
        after = dict(
            conn.execute(
                text("SELECT id, input_sha256 FROM predictions WHERE id IN (:a, :b, :c)"),
                {"a": theirs, "b": ours, "c": shared},
            ).all()
        )
    # Both of the licence's images are detached from the predictions; the one only it held
    # is gone from the store, the one the other licence holds stays, as does the cat.
    assert after == {theirs: None, shared: None, ours: query_images[ours]}
    assert not platform.blobs.exists(query_images[theirs])
    assert platform.blobs.exists(query_images[shared]) and platform.blobs.exists(query_images[ours])
    # The re-encode goes on over what is left and switches; nothing erased comes back.
    for batch in batches[1:]:
        reencode.process_batch(
            sessions=platform.sessions,
            blobs=platform.blobs,
            encoders_for=encoders_for,
            batch_id=batch,
        )
    with platform.engine.connect() as conn:
        status = conn.execute(
            text("SELECT status FROM reencodes WHERE id = :r"), {"r": job.id}
        ).scalar_one()
        pairs = conn.execute(text("SELECT count(*) FROM usable_pairs")).scalar_one()
    assert (status, pairs) == ("done", N + 1)
    assert _residue(platform) == dict.fromkeys(before, 0)
