"""Pairs' embeddings, one row per (pair, encoder), of the encoder's width: the one way they are
written (ingestion and re-encode call `store`), and what the database knows of each encoder."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from asifdb.db.bulk import stage_embeddings
from asifdb.errors import ConfigError


@dataclass(frozen=True)
class Staged:
    """A batch's embeddings in the transaction's staging table, row i by ordinal i."""

    table: str
    image_encoder: str
    text_encoder: str
    image_dim: int
    text_dim: int


def stage(
    session: Session, *, image_encoder: str, image: np.ndarray, text_encoder: str, text_: np.ndarray
) -> Staged:
    """Row i = (image[i], text_[i]) staged for `store` in this transaction, after checking each
    encoder's width against the one the database holds for it (recorded on first sight)."""
    for name, modality, matrix in ((image_encoder, "image", image), (text_encoder, "text", text_)):
        _register(session, name=name, modality=modality, dim=int(matrix.shape[1]))
    table = stage_embeddings(session, image, text_)
    return Staged(table, image_encoder, text_encoder, int(image.shape[1]), int(text_.shape[1]))


def store(
    session: Session, staged: Staged, *, pair_ids: Sequence[int], ords: Sequence[int]
) -> None:
    """Pair `pair_ids[j]` gets the staged row `ords[j]`'s two embeddings (kept where it already
    has one by that encoder: embedding is a function of the pair and the encoder)."""
    session.execute(
        text(
            "INSERT INTO pair_embeddings (pair_id, encoder, dim, embedding) "
            "SELECT u.pair_id, :ie, :idim, e.image "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:ords AS int[])) AS u(pair_id, ord) "
            f"JOIN {staged.table} AS e ON e.ord = u.ord "
            "UNION ALL "
            "SELECT u.pair_id, :te, :tdim, e.text "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:ords AS int[])) AS u(pair_id, ord) "
            f"JOIN {staged.table} AS e ON e.ord = u.ord "
            "ON CONFLICT (pair_id, encoder) DO NOTHING"
        ),
        {
            "ids": list(pair_ids),
            "ords": list(ords),
            "ie": staged.image_encoder,
            "idim": staged.image_dim,
            "te": staged.text_encoder,
            "tdim": staged.text_dim,
        },
    )


def stored(session: Session, *, encoder: str, pair_ids: Sequence[int]) -> dict[int, np.ndarray]:
    """The pairs' stored embeddings by `encoder`, as float32 (the stored float16 values
    exactly), by pair id; a pair without one is absent."""
    from asifdb.anchors.store import fetch_binary

    rows = fetch_binary(
        session,
        "SELECT pair_id, embedding FROM pair_embeddings "
        "WHERE encoder = %(e)s AND pair_id = ANY(%(ids)s)",
        {"e": encoder, "ids": list(pair_ids)},
    )
    return {int(pair_id): vector.astype(np.float32) for pair_id, vector in rows}


def width(session: Session, encoder: str | None) -> int | None:
    """The width of the encoder's stored embeddings (None: none stored yet)."""
    if encoder is None:
        return None
    return session.execute(
        text("SELECT dim FROM encoders WHERE name = :n"), {"n": encoder}
    ).scalar_one_or_none()


def _register(session: Session, *, name: str, modality: str, dim: int) -> None:
    session.execute(
        text(
            "INSERT INTO encoders (name, modality, dim) VALUES (:n, :m, :d) "
            "ON CONFLICT (name) DO NOTHING"
        ),
        {"n": name, "m": modality, "d": dim},
    )
    known = session.execute(
        text("SELECT modality, dim FROM encoders WHERE name = :n"), {"n": name}
    ).one()
    if (known.modality, known.dim) != (modality, dim):
        raise ConfigError(
            f"{name} gives {dim}-d {modality} embeddings, but the database holds its "
            f"embeddings as {known.dim}-d {known.modality}: the same name must mean the same "
            "model (give a changed model a new name)"
        )
