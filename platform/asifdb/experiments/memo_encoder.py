"""The platform's image encoder with its outputs kept on disk, keyed by the image bytes' sha256.

The experiments classify the same test images many times (before/after, seeds, pruned models);
the encoder is deterministic, so encoding them again would only cost time on two busy cores.
"""

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from asifdb.encoders import Encoder, ImageInput
from asifdb.encoders.protocol import Modality


class MemoImageEncoder:
    """An `Encoder` that returns `encoder`'s embedding of each image, computing it once.

    Images given as bytes are remembered (decoded PIL images are encoded every time); `save`
    writes what was learnt to `path` (an .npz), read back on the next start.
    """

    def __init__(self, encoder: Encoder[ImageInput], path: Path) -> None:
        self.encoder = encoder
        self._path = path
        self._rows: dict[str, np.ndarray] = {}
        self.computed = 0
        if path.exists():
            with np.load(path) as stored:
                if str(stored["encoder"]) == encoder.name:
                    self._rows = dict(zip(stored["keys"].tolist(), stored["rows"], strict=True))

    @property
    def name(self) -> str:
        return self.encoder.name

    @property
    def modality(self) -> Modality:
        return self.encoder.modality

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def embed_batch(self, items: Sequence[ImageInput]) -> np.ndarray:
        keys = [hashlib.sha256(i).hexdigest() if isinstance(i, bytes) else None for i in items]
        todo = [n for n, key in enumerate(keys) if key is None or key not in self._rows]
        fresh: dict[int, np.ndarray] = {}
        if todo:
            rows = self.encoder.embed_batch([items[n] for n in todo])
            fresh = dict(zip(todo, rows, strict=True))
            for n, row in fresh.items():
                if keys[n] is not None:
                    self._rows[keys[n]] = row
        self.computed += len(todo)
        out = [fresh[n] if n in fresh else self._rows[str(key)] for n, key in enumerate(keys)]
        return np.stack(out).astype(np.float32, copy=False)

    def save(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self._rows)
        rows = np.stack([self._rows[k] for k in keys]) if keys else np.zeros((0, self.dim))
        # Experiments run side by side share the file: write a copy, then swap it in whole.
        partial = self._path.with_name(f"{self._path.stem}.{os.getpid()}.partial.npz")
        np.savez(partial, encoder=self.name, keys=np.array(keys), rows=rows)
        os.replace(partial, self._path)
