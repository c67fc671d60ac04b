"""Text encoders from sentence-transformers: the packaged all-MiniLM-L6-v2 and all-mpnet-base-v2,
a folder saved by `SentenceTransformer.save`, or any model of the hub's `sentence-transformers/`
namespace."""

import threading
from collections.abc import Callable, Sequence

import numpy as np
from sentence_transformers import SentenceTransformer

from asifdb.encoders.device import resolve_device
from asifdb.encoders.protocol import EncoderError, Modality

_DEFAULT_BATCH = {"cpu": 64, "cuda": 256}


class SentenceTextEncoder:
    """Embeds captions with a SentenceTransformer; the model loads on first use."""

    modality: Modality = "text"

    def __init__(
        self,
        *,
        name: str,
        source: str | Callable[[], str],
        dim: int | None,
        device: str,
        batch_size: int | None,
    ) -> None:
        """`source` is a local model folder or a hub id, or gives the folder on first load (a
        model shipped in parts unpacks then, not when the encoder is named)."""
        self.name = name
        self._source = source
        self._dim = dim
        self._device = device
        self._batch_size = batch_size
        self._lock = threading.RLock()
        self._model: SentenceTransformer | None = None

    @property
    def dim(self) -> int:
        """Embedding width; for a model not known in advance, this loads it."""
        if self._dim is None:
            model = self._load()
            # Renamed in sentence-transformers 5; the old name warns, then goes.
            width = getattr(model, "get_embedding_dimension", None)
            self._dim = width() if width else model.get_sentence_embedding_dimension()
        return self._dim

    def embed_batch(self, items: Sequence[str]) -> np.ndarray:
        """(len(items), dim) float32, L2-normalised rows."""
        if not all(isinstance(item, str) for item in items):
            raise TypeError("a text encoder takes a sequence of str")
        with self._lock:
            model = self._load()
            if not items:
                return np.empty((0, self.dim), dtype=np.float32)
            device = model.device.type
            out = model.encode(
                list(items),
                batch_size=self._batch_size or _DEFAULT_BATCH.get(device, 64),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32)

    def _load(self) -> SentenceTransformer:
        with self._lock:
            if self._model is None:
                device = resolve_device(self._device)
                source = self._source if isinstance(self._source, str) else self._source()
                try:
                    self._model = SentenceTransformer(source, device=str(device))
                except OSError as exc:
                    raise EncoderError(
                        f"cannot load text encoder {self.name!r}: it comes from the Hugging "
                        "Face hub, or from its local cache when HF_HUB_OFFLINE=1 (the default "
                        f"text encoder ships in a Python package and needs neither). Cause: {exc}"
                    ) from exc
            return self._model
