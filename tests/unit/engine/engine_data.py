"""Seeded embeddings for the engine tests."""

import numpy as np


def clustered(rng: np.random.Generator, n: int, d: int, clusters: int = 20) -> np.ndarray:
    """Embeddings with cluster structure (similarities spread like real ones, not ~0)."""
    centres = rng.standard_normal((clusters, d))
    return (centres[rng.integers(0, clusters, n)] + rng.standard_normal((n, d))).astype(np.float32)
