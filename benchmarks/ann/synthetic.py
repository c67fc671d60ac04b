"""Synthetic clustered image-caption embeddings at any scale, and their bulk load as pairs, for
bench_ann.py and bench_revoke.py.

Concepts sit in a low-dimensional latent space (grouped under super-concepts, as real classes
are), and both modalities are fixed random projections of it plus isotropic noise.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import psycopg
from pgvector import HalfVector

IMAGE_DIM = 1280
TEXT_DIM = 384
_LATENT = 64
_SUPERS = 50
# Chosen so that ASIF (k=800, p=8) on this data is as sensitive to losing neighbours as it is
# on real embeddings: keeping only the top 400 / 100 image neighbours changes 7 % / 21 % of its
# top-1 labels (measured on real encoders: 8 % / 22 %). Accuracy is ~0.6 over 100 labels.
_CONCEPT_SPREAD = 0.2
_INSTANCE_SPREAD = 1.0
_IMAGE_NOISE = 1.0
_TEXT_NOISE = 0.35
_CAPTION_DRIFT = 1.5
# A shared direction: every embedding leans one way, as real ones do (median cosine ~0.15).
_COMMON = 1.0


@dataclass(frozen=True)
class World:
    """The fixed part of the generator: concepts and the two projections."""

    concepts: np.ndarray  # (c, latent)
    image_projection: np.ndarray  # (latent, IMAGE_DIM)
    text_projection: np.ndarray  # (latent, TEXT_DIM)

    @classmethod
    def make(cls, n_concepts: int, seed: int) -> "World":
        rng = np.random.default_rng(seed)
        supers = rng.standard_normal((_SUPERS, _LATENT))
        supers[:, 0] += _COMMON * np.sqrt(_LATENT)
        parent = rng.integers(0, _SUPERS, n_concepts)
        concepts = supers[parent] + _CONCEPT_SPREAD * rng.standard_normal((n_concepts, _LATENT))
        return cls(
            concepts.astype(np.float32),
            (rng.standard_normal((_LATENT, IMAGE_DIM)) / np.sqrt(_LATENT)).astype(np.float32),
            (rng.standard_normal((_LATENT, TEXT_DIM)) / np.sqrt(_LATENT)).astype(np.float32),
        )

    def pairs(self, concept: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Unit image (n, 1280) and caption (n, 384) embeddings of instances of `concept`."""
        rng = np.random.default_rng(seed)
        latent = self._instances(concept, rng)
        drift = _CAPTION_DRIFT * rng.standard_normal(latent.shape, dtype=np.float32)
        image = self._embed(latent, self.image_projection, _IMAGE_NOISE, rng)
        text = self._embed(latent + drift, self.text_projection, _TEXT_NOISE, rng)
        return image, text

    def images(self, concept: np.ndarray, seed: int) -> np.ndarray:
        """Unit image embeddings of new instances of `concept`: queries near the data."""
        rng = np.random.default_rng(seed)
        return self._embed(self._instances(concept, rng), self.image_projection, _IMAGE_NOISE, rng)

    def label_texts(self, concept: np.ndarray) -> np.ndarray:
        """Unit caption embeddings of the concepts themselves: a classifier's candidate labels."""
        return _unit(self.concepts[concept] @ self.text_projection)

    def _instances(self, concept: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        spread = rng.standard_normal((len(concept), _LATENT), dtype=np.float32)
        return self.concepts[concept] + _INSTANCE_SPREAD * spread

    @staticmethod
    def _embed(
        latent: np.ndarray, projection: np.ndarray, noise: float, rng: np.random.Generator
    ) -> np.ndarray:
        clean = latent @ projection
        scale = noise * np.sqrt((clean**2).mean())
        return _unit(clean + scale * rng.standard_normal(clean.shape, dtype=np.float32))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def copy_pairs(
    conn: psycopg.Connection,
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    encoders: tuple[str, str],
    licences: int,
) -> int:
    """COPY (binary) ready pairs, chunk by chunk of (image, text) embeddings, round-robin over
    licences 1..`licences`, with their embeddings by `encoders` as `pair_embeddings` rows (what
    ingestion writes, without the encoding). Each chunk commits; returns the pairs added."""
    for name, modality, dim in (
        (encoders[0], "image", IMAGE_DIM),
        (encoders[1], "text", TEXT_DIM),
    ):
        conn.execute(
            "INSERT INTO encoders (name, modality, dim) VALUES (%s, %s, %s) "
            "ON CONFLICT (name) DO NOTHING",
            (name, modality, dim),
        )
    first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM pairs").fetchone()[0]
    n = 0
    for image, text in chunks:
        with conn.cursor() as cursor:
            with cursor.copy(
                "COPY pairs (collection, image_sha256, caption, license_id, status) "
                "FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["text", "text", "text", "int4", "text"])
                for i in range(n, n + len(image)):
                    copy.write_row(("bench", f"{i:064x}", f"pair {i}", 1 + i % licences, "ready"))
            with cursor.copy(
                "COPY pair_embeddings (pair_id, encoder, dim, embedding) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "text", "int4", "halfvec"])
                for j in range(len(image)):
                    copy.write_row((first + n + j, encoders[0], IMAGE_DIM, HalfVector(image[j])))
                    copy.write_row((first + n + j, encoders[1], TEXT_DIM, HalfVector(text[j])))
        conn.commit()
        n += len(image)
    return n
