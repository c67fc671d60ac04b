"""Encoders named by a folder on this machine, saved by their library: `timm/local-dir:<folder>`
(timm's `save_for_hf`: config.json + model.safetensors) or `sentence-transformers/local-dir:
<folder>` (`SentenceTransformer.save`). The registry calls these; nothing here imports torch.

The identity records the folder and the sha256 of its content, `<prefix>local-dir:<absolute
folder>@sha256:<hex>`, so embeddings of a changed folder never pass for the old one's."""

import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from asifdb.encoders.protocol import EncoderError

SCHEME = "local-dir:"
_PINNED = re.compile(r"^(?P<folder>.+)@sha256:(?P<digest>[0-9a-f]{64})$")
_CHUNK = 1 << 20
# What each library's save writes and its loader needs (timm takes either weights file).
_REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "image": (("config.json",), ("model.safetensors", "pytorch_model.bin")),
    "text": (("modules.json",),),
}
_SAVED_BY = {
    "image": "timm's save_for_hf (config.json + model.safetensors)",
    "text": "SentenceTransformer.save (modules.json, the modules' folders)",
}


def resolve(spec: str, *, prefix: str, modality: Literal["image", "text"]) -> tuple[Path, str]:
    """The folder a name's `<folder>[@sha256:<hex>]` part denotes, and the encoder's identity.

    A relative folder is taken from the working folder. A pinned name (an identity, as the
    database records it) must match the folder's content now. Raises `EncoderError` naming
    what is wrong and the fix.
    """
    pinned = _PINNED.match(spec)
    folder = Path(pinned["folder"] if pinned else spec).expanduser().resolve()
    if not folder.is_dir():
        raise EncoderError(f"{prefix}{SCHEME}{folder}: no such folder")
    for alternatives in _REQUIRED[modality]:
        if not any((folder / name).is_file() for name in alternatives):
            raise EncoderError(
                f"{folder} has no {' or '.join(alternatives)}: it is not a folder saved by "
                f"{_SAVED_BY[modality]}"
            )
    digest = fingerprint(folder)
    identity = f"{prefix}{SCHEME}{folder}@sha256:{digest}"
    if pinned and pinned["digest"] != digest:
        raise EncoderError(
            f"{folder} changed since it was named {prefix}{SCHEME}{spec}: its content is now "
            f"sha256:{digest}. Embeddings of the old content are not this model's; re-encode "
            f"with {prefix}{SCHEME}{folder} (recorded as {identity})"
        )
    return folder, identity


def timm_features(folder: Path) -> int | None:
    """The pooled feature width a timm folder's config.json states (None if it does not)."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise EncoderError(f"{folder}/config.json is not timm's config: {exc}") from exc
    if not isinstance(config, dict) or "architecture" not in config:
        raise EncoderError(f"{folder}/config.json names no architecture: not a timm folder")
    features = config.get("num_features")
    return features if isinstance(features, int) else None


def fingerprint(folder: Path) -> str:
    """sha256 over every file of `folder` (recursively, hidden names skipped): each one's path
    relative to it and its bytes' sha256, in path order. Computed once per process while no
    file's size or time changes."""
    files = sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    stats = tuple(
        (path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns)
        for path in files
        for stat in (path.stat(),)
    )
    return _fingerprint(folder, stats)


@lru_cache(maxsize=64)
def _fingerprint(folder: Path, stats: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for relative, _size, _mtime in stats:
        content = hashlib.sha256()
        with (folder / relative).open("rb") as source:
            while chunk := source.read(_CHUNK):
                content.update(chunk)
        digest.update(f"{relative}\0{content.hexdigest()}\n".encode())
    return digest.hexdigest()
