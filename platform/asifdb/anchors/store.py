"""The usable anchors of one model version, held in memory, and their sync from the database.

`sync` moves a snapshot to the database's current version by applying only what changed
(`pair_usability` intervals), inside the caller's transaction, so a query sees one version.
"""

import logging
from dataclasses import dataclass, field, replace

import numpy as np
import psycopg
from psycopg.adapt import Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo
from sqlalchemy import Row, text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# Past this many changed pairs, reloading everything is as cheap as applying the changes.
_FULL_RELOAD_FRACTION = 0.25


class _HalfvecToNumpy(Loader):
    """pgvector's binary halfvec (int16 dim, int16 unused, big-endian float16s) to numpy."""

    format = Format.BINARY

    def load(self, data: bytes | bytearray | memoryview) -> np.ndarray:
        return np.frombuffer(bytes(data), dtype=">f2", offset=4)


def fetch_binary(session: Session, sql: str, params: dict) -> list[tuple]:
    connection = session.connection().connection.dbapi_connection
    assert isinstance(connection, psycopg.Connection)
    info = TypeInfo.fetch(connection, "halfvec")
    assert info is not None, "pgvector's halfvec type is missing"
    with connection.cursor(binary=True) as cursor:
        cursor.adapters.register_loader(info.oid, _HalfvecToNumpy)
        cursor.execute(sql, params)
        return cursor.fetchall()


def _normalise(rows: list[np.ndarray], dim: int) -> np.ndarray:
    if not rows:
        return np.zeros((0, dim), dtype=np.float32)
    matrix = np.stack(rows).astype(np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


@dataclass(frozen=True)
class Anchors:
    """Usable pairs at `version`: rows of L2-normalised embeddings, row i is pair `ids[i]`.

    Rows are in ascending pair id. Removing a pair clears `alive[i]`; adding one appends a
    row (or, when its id is smaller than a stored one, makes a new, re-sorted `Anchors`), so
    a version's positions stay valid in later versions while `ids` starts with its `ids`.
    """

    version: int
    ids: np.ndarray  # (n,) int64
    image: np.ndarray  # (n, d_image) float32, unit rows
    text: np.ndarray  # (n, d_text) float32, unit rows
    alive: np.ndarray  # (n,) bool
    position: dict[int, int] = field(repr=False)
    # Erasures the database had recorded when these rows were loaded: one more since, and the
    # rows (which keep a revoked pair's embeddings, not alive) are dropped by a full reload.
    erasures: int = 0
    # The model's (image, text) encoders the rows are embeddings by: a switch reloads them all.
    encoders: tuple[str | None, str | None] = (None, None)

    @property
    def size(self) -> int:
        return int(self.alive.sum())

    def usable_rows(self) -> np.ndarray:
        return np.flatnonzero(self.alive)


# `usable_pairs` (the default model) and `model_usable_pairs` (a named model's rows) show each
# pair's embeddings by the model's two encoders.
_SELECT = "SELECT id, image_embedding, text_embedding FROM {} WHERE {} ORDER BY id"


@dataclass(frozen=True)
class _Source:
    """Where a model's usable pairs are read: the view and its filter (psycopg's and
    SQLAlchemy's spelling of the model's name)."""

    view: str
    where: str  # psycopg parameters
    where_sql: str  # SQLAlchemy parameters
    params: dict


def _source(model: str | None) -> _Source:
    if model is None:
        return _Source("usable_pairs", "true", "true", {})
    return _Source("model_usable_pairs", "model = %(model)s", "model = :model", {"model": model})


def load(session: Session, model: str | None = None) -> Anchors:
    """Every usable pair of the default model (or the named `model`) at the session's
    snapshot."""
    state = _state(session, model)
    source = _source(model)
    rows = fetch_binary(session, _SELECT.format(source.view, source.where), source.params)
    anchors = _build(state.version, rows, image_dim=state.image_dim, text_dim=state.text_dim)
    return replace(
        anchors,
        erasures=_erasures(session),
        encoders=(state.image_encoder, state.text_encoder),
    )


def _state(session: Session, model: str | None) -> Row:
    """The version, and the model's encoders with the width of each (0 before the first
    pair)."""
    encoders = (
        "model_state m WHERE m.id = 1"
        if model is None
        else "models m WHERE m.name = :model AND m.status = 'ready'"
    )
    return session.execute(
        text(
            "SELECT (SELECT version FROM model_state WHERE id = 1) AS version, "
            "m.image_encoder, m.text_encoder, "
            "coalesce((SELECT dim FROM encoders WHERE name = m.image_encoder), 0) AS image_dim, "
            "coalesce((SELECT dim FROM encoders WHERE name = m.text_encoder), 0) AS text_dim "
            f"FROM {encoders}"
        ),
        {"model": model},
    ).one()


def _erasures(session: Session) -> int:
    return session.execute(text("SELECT count(*) FROM erasures")).scalar_one()


def _build(version: int, rows: list[tuple], *, image_dim: int, text_dim: int) -> Anchors:
    """Rows of (id, image embedding, text embedding); the widths shape an empty result."""
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    image = _normalise([r[1] for r in rows], image_dim)
    txt = _normalise([r[2] for r in rows], text_dim)
    return Anchors(
        version,
        ids,
        image,
        txt,
        np.ones(len(ids), dtype=bool),
        {int(i): n for n, i in enumerate(ids)},
    )


def sync(session: Session, current: Anchors | None, model: str | None = None) -> Anchors:
    """`current` moved to the version the session sees (a full load when that is cheaper).

    The default model follows the usability intervals (then counts against its view); a named
    model compares its rows with its view's ids (`_sync_by_ids`)."""
    state = _state(session, model)
    source = _source(model)
    version = state.version
    if current is not None and current.version == version:
        return current
    if (
        current is None
        or version < current.version
        or current.encoders != (state.image_encoder, state.text_encoder)
        or _erasures(session) != current.erasures
    ):
        return load(session, model)
    if model is not None:
        return _sync_by_ids(session, current, version, model)
    changes = session.execute(
        text(
            "SELECT pair_id, from_version, to_version FROM pair_usability "
            "WHERE (from_version > :old AND from_version <= :new) "
            "OR (to_version > :old AND to_version <= :new)"
        ),
        {"old": current.version, "new": version},
    ).all()
    if len(changes) > _FULL_RELOAD_FRACTION * max(len(current.ids), 1):
        return load(session, model)
    usable_now: dict[int, bool] = {}
    for pair_id, start, end in sorted(changes, key=lambda c: (c[1], c[2] or 0)):
        usable_now[pair_id] = start <= version and (end is None or end > version)
    alive = current.alive.copy()
    missing = []
    for pair_id, usable in usable_now.items():
        row = current.position.get(pair_id)
        if row is not None:
            alive[row] = usable
        elif usable:
            missing.append(pair_id)
    anchors = replace(current, version=version, alive=alive)
    if missing:
        rows = fetch_binary(
            session,
            _SELECT.format(source.view, f"{source.where} AND id = ANY(%(ids)s)"),
            {**source.params, "ids": missing},
        )
        anchors = _append(anchors, rows)
    expected = session.execute(
        text(f"SELECT count(*) FROM {source.view} WHERE {source.where_sql}"), source.params
    ).scalar_one()
    if anchors.size != expected:
        log.warning(
            "anchor sync found %d pairs, the database %d: reloading", anchors.size, expected
        )
        return load(session)
    return anchors


def _sync_by_ids(session: Session, current: Anchors, version: int, model: str) -> Anchors:
    """A named model's rows moved to `version` by the set of its usable ids, read whole: the
    usability intervals are the default model's, and a named model's set can change where
    the default's does not (a pair it holds that the default lacks), so they are not used."""
    source = _source(model)
    usable = np.fromiter(
        session.scalars(
            text(f"SELECT id FROM {source.view} WHERE {source.where_sql} ORDER BY id"),
            source.params,
        ),
        dtype=np.int64,
    )
    alive = np.isin(current.ids, usable)
    missing = np.setdiff1d(usable, current.ids, assume_unique=True)
    if len(missing) > _FULL_RELOAD_FRACTION * max(len(current.ids), 1):
        return load(session, model)
    anchors = replace(current, version=version, alive=alive)
    if len(missing):
        rows = fetch_binary(
            session,
            _SELECT.format(source.view, f"{source.where} AND id = ANY(%(ids)s)"),
            {**source.params, "ids": missing.tolist()},
        )
        anchors = _append(anchors, rows)
    return anchors


def _append(anchors: Anchors, rows: list[tuple]) -> Anchors:
    new = _build(
        anchors.version, rows, image_dim=anchors.image.shape[1], text_dim=anchors.text.shape[1]
    )
    ids = np.concatenate([anchors.ids, new.ids])
    image = np.concatenate([anchors.image, new.image])
    txt = np.concatenate([anchors.text, new.text])
    alive = np.concatenate([anchors.alive, new.alive])
    if len(anchors.ids) and len(new.ids) and new.ids[0] < anchors.ids[-1]:
        # A pair that became usable after a newer one (batches finish out of order).
        order = np.argsort(ids, kind="stable")
        ids, image, txt, alive = ids[order], image[order], txt[order], alive[order]
    position = {int(i): n for n, i in enumerate(ids)}
    return replace(anchors, ids=ids, image=image, text=txt, alive=alive, position=position)
