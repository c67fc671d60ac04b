"""The one interface every encoder offers, and the error it raises. Services depend on these,
never on a concrete encoder."""

from collections.abc import Sequence
from typing import Literal, Protocol, TypeVar, runtime_checkable

import numpy as np
from PIL import Image

from asifdb.errors import ConfigError

Modality = Literal["image", "text"]

Runtime = Literal["auto", "torch", "openvino"]
"""What computes an image encoder: "openvino" is CPU-only; "auto" picks it on CPU, else torch."""

ImageInput = bytes | Image.Image
"""What an image encoder takes: encoded image bytes (JPEG, PNG, ...) or a decoded PIL image."""

_Item = TypeVar("_Item", contravariant=True)


class EncoderError(ConfigError):
    """An encoder cannot be named, found, or loaded; the message names the encoder and the fix."""


@runtime_checkable
class Encoder(Protocol[_Item]):
    """A frozen unimodal encoder: a batch of items in, one embedding row per item out.

    `name` is a stable identity that includes the weights (embeddings of two names never mix);
    `embed_batch` returns float32 of shape (len(items), dim), each row L2-normalised.
    """

    @property
    def name(self) -> str: ...

    @property
    def modality(self) -> Modality: ...

    @property
    def dim(self) -> int: ...

    def embed_batch(self, items: Sequence[_Item]) -> np.ndarray: ...
