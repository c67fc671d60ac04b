"""Image encoders from timm: the pooled features of a timm model, computed by torch or, on CPU,
by an OpenVINO build of the same graph (same embeddings within float rounding, ~2x faster)."""

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

from asifdb.encoders import openvino_runtime
from asifdb.encoders.device import resolve_device
from asifdb.encoders.images import decode_image, to_rgb
from asifdb.encoders.protocol import EncoderError, ImageInput, Modality, Runtime

# Images per forward pass when the caller does not say: what measured fastest on each runtime
# (docs/benchmarks-encoders.md); a GPU wants big batches, OpenVINO on CPU small cache-sized ones.
_DEFAULT_BATCH = {"openvino": 8, "cpu": 32, "cuda": 128}


class _PixelsToFeatures(torch.nn.Module):
    """uint8 NCHW pixels to pooled features, with the model's mean/std normalisation in the graph
    (timm's "prefetcher" layout: images cross to the device, or to OpenVINO, as bytes)."""

    def __init__(self, model: torch.nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.model = model
        self.register_buffer("offset", torch.tensor(mean).view(1, -1, 1, 1) * 255)
        self.register_buffer("scale", torch.tensor(std).view(1, -1, 1, 1) * 255)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model((pixels.float() - self.offset) / self.scale)


@dataclass(frozen=True)
class _Loaded:
    dim: int
    batch_size: int
    transform: Callable[[Image.Image], torch.Tensor]
    run: Callable[[np.ndarray], np.ndarray]


class TimmImageEncoder:
    """Embeds images (bytes or PIL) with a timm model; the model loads on first use."""

    modality: Modality = "image"

    def __init__(
        self,
        *,
        name: str,
        architecture: str,
        load_weights: Callable[[torch.nn.Module], None] | None,
        dim: int | None,
        device: str,
        batch_size: int | None,
        runtime: Runtime,
        cache_dir: Path | None,
    ) -> None:
        """`load_weights` fills a bare model; None means timm's pretrained weights (model hub)."""
        self.name = name
        self._architecture = architecture
        self._load_weights = load_weights
        self._dim = dim
        self._device = device
        self._batch_size = batch_size
        self._runtime = runtime
        self._cache_dir = cache_dir
        self._lock = threading.RLock()
        self._loaded: _Loaded | None = None

    @property
    def dim(self) -> int:
        """Embedding width; for a model not known in advance, this loads it."""
        return self._dim if self._dim is not None else self._load().dim

    def embed_batch(self, items: Sequence[ImageInput]) -> np.ndarray:
        """(len(items), dim) float32, L2-normalised rows; images are RGB-converted first."""
        with self._lock:
            loaded = self._load()
            out = np.empty((len(items), loaded.dim), dtype=np.float32)
            for start in range(0, len(items), loaded.batch_size):
                chunk = items[start : start + loaded.batch_size]
                pixels = torch.stack([loaded.transform(_rgb(item)) for item in chunk]).numpy()
                out[start : start + len(chunk)] = loaded.run(pixels)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), np.finfo(np.float32).tiny)
        return out

    def _load(self) -> _Loaded:
        with self._lock:
            if self._loaded is None:
                self._loaded = self._build()
            return self._loaded

    def _build(self) -> _Loaded:
        device = resolve_device(self._device)
        runtime = self._runtime
        if runtime == "auto":
            runtime = "openvino" if device.type == "cpu" else "torch"
        if runtime == "openvino" and device.type != "cpu":
            raise EncoderError(f"the OpenVINO runtime runs on CPU, not {device}: use 'torch'")
        model = self._create_model()
        config = resolve_data_config({}, model=model)
        graph = _PixelsToFeatures(model, config["mean"], config["std"]).eval()
        if runtime == "openvino":
            run = openvino_runtime.compile_for_cpu(
                graph, key=self.name, input_shape=config["input_size"], cache_dir=self._cache_dir
            )
        else:
            run = _torch_runner(graph.to(device), device)
        return _Loaded(
            dim=model.num_features,
            batch_size=self._batch_size
            or _DEFAULT_BATCH[runtime if runtime == "openvino" else device.type],
            # use_prefetcher: resize and crop only, giving uint8 CHW; the graph normalises.
            transform=create_transform(**config, use_prefetcher=True),
            run=run,
        )

    def _create_model(self) -> torch.nn.Module:
        pretrained = self._load_weights is None
        try:
            model = timm.create_model(self._architecture, pretrained=pretrained, num_classes=0)
        except (OSError, RuntimeError) as exc:
            raise EncoderError(
                f"cannot load image encoder {self.name!r}: its weights come from the Hugging "
                "Face hub, or from its local cache when HF_HUB_OFFLINE=1 (the default image "
                f"encoder's ship in a Python package and need neither). Cause: {exc}"
            ) from exc
        if self._load_weights is not None:
            self._load_weights(model)
        return model.eval()


def _torch_runner(
    graph: torch.nn.Module, device: torch.device
) -> Callable[[np.ndarray], np.ndarray]:
    def run(pixels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return graph(torch.from_numpy(pixels).to(device)).float().cpu().numpy()

    return run


def _rgb(item: ImageInput) -> Image.Image:
    if isinstance(item, bytes):
        return decode_image(item)
    if isinstance(item, Image.Image):
        return to_rgb(item)
    raise TypeError(f"an image encoder takes bytes or PIL images, not {type(item).__name__}")
