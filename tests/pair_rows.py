"""Pairs with given embeddings written straight into a database, for tests that need many
anchors without encoding them: the rows `ingestion` would write (pairs, their encoders,
their embeddings), with the model's encoders set to the ones named."""

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, insert, text

from asifdb.db.models import Pair, PairEmbedding


def insert_pairs(
    conn: Connection,
    rows: Sequence[dict[str, Any]],
    *,
    image: np.ndarray,
    text_: np.ndarray,
    encoders: tuple[str, str] = ("i", "t"),
    model: bool = True,
) -> list[int]:
    """Insert `rows` (Pair columns) with image[j] / text_[j] as row j's embeddings by
    `encoders`; their ids, in order. `model` makes those encoders the model's."""
    image_encoder, text_encoder = encoders
    for name, modality, matrix in (
        (image_encoder, "image", image),
        (text_encoder, "text", text_),
    ):
        conn.execute(
            text(
                "INSERT INTO encoders (name, modality, dim) VALUES (:n, :m, :d) "
                "ON CONFLICT (name) DO NOTHING"
            ),
            {"n": name, "m": modality, "d": int(matrix.shape[1])},
        )
    if model:
        conn.execute(
            text(
                "INSERT INTO model_state (id, version, image_encoder, text_encoder) "
                "VALUES (1, 1, :i, :t) ON CONFLICT (id) DO UPDATE "
                "SET image_encoder = excluded.image_encoder, text_encoder = excluded.text_encoder"
            ),
            {"i": image_encoder, "t": text_encoder},
        )
    ids = list(conn.execute(insert(Pair).returning(Pair.id), list(rows)).scalars())
    embeddings = [
        {"pair_id": pid, "encoder": name, "dim": int(matrix.shape[1]), "embedding": matrix[j]}
        for j, pid in enumerate(ids)
        for name, matrix in ((image_encoder, image), (text_encoder, text_))
    ]
    if embeddings:
        conn.execute(insert(PairEmbedding), embeddings)
    return ids
