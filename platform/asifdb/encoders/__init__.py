"""Frozen unimodal encoders behind one interface: `get_encoder(name).embed_batch(items)`.
Images go in as bytes or PIL images, texts as str; rows come out L2-normalised float32."""

from asifdb.encoders.images import decode_image
from asifdb.encoders.protocol import Encoder, EncoderError, ImageInput, Modality, Runtime
from asifdb.encoders.registry import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER, get_encoder
from asifdb.encoders.runtime import runtime_env

__all__ = [
    "DEFAULT_IMAGE_ENCODER",
    "DEFAULT_TEXT_ENCODER",
    "Encoder",
    "EncoderError",
    "ImageInput",
    "Modality",
    "Runtime",
    "decode_image",
    "get_encoder",
    "runtime_env",
]
