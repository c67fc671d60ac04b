"""Engine test data: seeded random embeddings and the committed real-embedding fixture."""

from pathlib import Path

import numpy as np
import pytest

REAL = Path(__file__).parent / "fixtures" / "real_embeddings.npz"


@pytest.fixture(scope="session")
def real() -> dict[str, np.ndarray]:
    """Real encoder outputs (benchmarks/engine/make_fixture.py): 300 anchor pairs, 40 val
    images of 10 classes, 2 templates per class. Committed; a missing file is a failure."""
    assert REAL.exists(), f"{REAL} is missing: run benchmarks/engine/make_fixture.py"
    with np.load(REAL) as data:
        return {k: data[k] for k in data.files}
