"""Checks and L2-normalises embedding matrices; every entry point of the engine calls it first.

Normalisation runs row by row in float64, so a row's unit vector never depends on its batch.
"""

from collections.abc import Iterator

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor

# Rows normalised per step: bounds the float64 working copy whatever the matrix size.
_ROWS_PER_STEP = 65_536


def _as_matrix(x: ArrayLike, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{name} must be floating point, not {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, not {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be floating point, not {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-d (n, d) matrix, got shape {tuple(x.shape)}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has zero dimensions")
    return x.detach().cpu()


def unit_row_chunks(
    x: ArrayLike, name: str = "embeddings", *, rows: int = _ROWS_PER_STEP
) -> Iterator[torch.Tensor]:
    """Yields consecutive (<= rows, d) float32 blocks of `x` (n, d) with unit L2 rows.

    For matrices too large to copy whole (1M x 1280 float32 is 5 GB). Raises ValueError on
    an empty matrix, non-finite values or an all-zero row (it has no direction).
    """
    x = _as_matrix(x, name)
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: at least one row is needed")
    for start in range(0, x.shape[0], rows):
        block = x[start : start + rows].to(torch.float64)
        if not torch.isfinite(block).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        norms = torch.linalg.vector_norm(block, dim=1, keepdim=True)
        zero = torch.nonzero(norms[:, 0] == 0)
        if len(zero):
            raise ValueError(f"{name} row {start + int(zero[0, 0])} is all zeros")
        yield (block / norms).to(torch.float32)


def normalise(x: ArrayLike, name: str = "embeddings") -> np.ndarray:
    """(n, d) any float dtype, numpy or torch -> (n, d) float32 numpy array with unit L2 rows."""
    return torch.cat(list(unit_row_chunks(x, name))).numpy()
