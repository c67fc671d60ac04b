"""Open a source (auto-detecting its layout), count its items and stream them by position. The
ingestion job calls `open_source`, `count_items` for its total and `iter_items` per batch."""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from asifdb.errors import InvalidInput
from asifdb.ingest.class_folders import list_classes, parse_classnames
from asifdb.ingest.img2dataset import is_shard_folder, list_folders, list_shards
from asifdb.ingest.items import Part, SourceItem
from asifdb.ingest.jsonl import JsonlFile
from asifdb.ingest.validate import DEFAULT_LIMITS, Limits


class SourceError(InvalidInput):
    """A source that cannot be read at all (missing path, unknown layout); the message says how
    to fix it. Problems with single items are rejects, never this."""


class SourceKind(StrEnum):
    WEBDATASET = "webdataset"
    FILES = "files"
    JSONL = "jsonl"
    CLASS_FOLDERS = "class_folders"


@dataclass(frozen=True)
class Source:
    """A readable source, as `open_source` checked it. Plain values: a job can store them and a
    worker rebuild the same Source with `Source(**stored)` (kind as its string)."""

    kind: SourceKind
    path: Path
    template: str | None = None
    classnames: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Rebuilt from stored plain values, kind and path arrive as strings.
        object.__setattr__(self, "kind", SourceKind(self.kind))
        object.__setattr__(self, "path", Path(self.path))


def open_source(
    path: str | Path,
    *,
    kind: SourceKind | str | None = None,
    template: str | None = None,
    classnames: str | Path | Mapping[str, str] | None = None,
) -> Source:
    """Check that `path` is a readable source and tell its kind (detected unless given).

    `template` (e.g. "a photo of a {}.") and `classnames` (a `folder<TAB>name` file or a mapping)
    are for class folders only, and a template is what makes a folder read as class folders."""
    location = Path(path).expanduser().absolute()
    if not location.exists():
        raise SourceError(f"{location} does not exist: check the path (it is read on the server)")
    try:
        chosen = SourceKind(kind) if kind is not None else _detect(location, template)
    except ValueError:
        kinds = ", ".join(member.value for member in SourceKind)
        raise SourceError(f"unknown source kind {kind!r}: use one of {kinds}") from None
    if chosen is not SourceKind.CLASS_FOLDERS and (template is not None or classnames):
        raise SourceError(
            f"a caption template and class names apply to class folders only, not to {chosen}: "
            "drop them, or pass kind='class_folders'"
        )
    _check_layout(location, chosen)
    source = Source(chosen, location)
    if chosen is SourceKind.CLASS_FOLDERS:
        _check_template(template)
        source = Source(chosen, location, template, _read_classnames(classnames))
    if not _parts(source):
        raise SourceError(f"{location} holds nothing to read as {chosen}: check the path and kind")
    return source


def count_items(source: Source) -> int:
    """The number of positions in the source: its item count, unless a stats file disagrees with
    its shard (see `iter_items`). Reads stats files, listings or tar headers, never images."""
    return sum(part.declared_count() for part in _parts(source))


def iter_items(
    source: Source, *, start: int = 0, stop: int | None = None, limits: Limits = DEFAULT_LIMITS
) -> Iterator[SourceItem]:
    """The items at positions [start, stop), streamed in stable order.

    Every part (tar shard, shard folder, class folder, JSONL file) owns as many positions as it
    declares (`successes` in img2dataset's stats, else what a scan finds); its items fill them in
    order. Items past a part's declared size share its last position, and a part holding fewer
    leaves positions empty: ranges that tile [0, count_items) read every item exactly once, and
    parts before `start` are skipped unopened. Keys, not positions, identify items.

    Image files over `limits.max_image_bytes` are not read: they come as `image_too_large`."""
    offset = 0
    for part in _parts(source):
        if stop is not None and offset >= stop:
            return
        size = part.declared_count()
        if size == 0 or offset + size <= start:
            offset += size
            continue
        skip = max(0, start - offset)
        for index, item in enumerate(part.read(skip, limits.max_image_bytes), start=skip):
            if stop is not None and offset + min(index, size - 1) >= stop:
                break
            yield item
        offset += size


def _parts(source: Source) -> Sequence[Part]:
    try:
        match source.kind:
            case SourceKind.WEBDATASET:
                return list_shards(source.path)
            case SourceKind.FILES:
                return list_folders(source.path)
            case SourceKind.JSONL:
                return [JsonlFile(source.path)]
            case SourceKind.CLASS_FOLDERS:
                assert source.template is not None
                return list_classes(source.path, source.template, source.classnames)
    except OSError as error:
        raise SourceError(f"cannot read the source {source.path}: {error}") from error


def _detect(path: Path, template: str | None) -> SourceKind:
    if path.is_file():
        if path.suffix == ".tar":
            return SourceKind.WEBDATASET
        if path.suffix in (".jsonl", ".ndjson"):
            return SourceKind.JSONL
        raise SourceError(
            f"cannot tell what {path} is: expected a .tar shard or a .jsonl file, or pass kind="
        )
    if template is not None:
        return SourceKind.CLASS_FOLDERS
    entries = list(path.iterdir())
    if any(entry.suffix == ".tar" and entry.is_file() for entry in entries):
        return SourceKind.WEBDATASET
    if any(is_shard_folder(entry) for entry in entries):
        return SourceKind.FILES
    if any(entry.is_dir() and not entry.name.startswith(".") for entry in entries):
        raise SourceError(
            f"{path} looks like a folder of class folders: pass a caption template, "
            "e.g. template='a photo of a {}.'"
        )
    raise SourceError(
        f"{path} holds no .tar shards, numbered shard folders or class folders: point at an "
        "img2dataset output folder, a .jsonl file, or a folder of class folders"
    )


def _check_layout(path: Path, kind: SourceKind) -> None:
    wants_file = kind is SourceKind.JSONL or (kind is SourceKind.WEBDATASET and path.is_file())
    if wants_file and not path.is_file():
        raise SourceError(f"a {kind} source is a file, and {path} is a folder")
    if not wants_file and not path.is_dir():
        raise SourceError(f"a {kind} source is a folder, and {path} is a file")


def _check_template(template: str | None) -> None:
    example = "e.g. template='a satellite image of {}.'"
    if template is None:
        raise SourceError(f"class folders need a caption template, {example}")
    try:
        filled = template.format("cat"), template.format("dog")
    except (IndexError, KeyError, ValueError) as error:
        raise SourceError(
            f"caption template {template!r} is not usable ({error}): write one {{}} where the "
            f"class name goes, {example}"
        ) from None
    if filled[0] == filled[1]:
        raise SourceError(f"caption template {template!r} has no {{}} for the class, {example}")


def _read_classnames(classnames: str | Path | Mapping[str, str] | None) -> dict[str, str]:
    if classnames is None:
        return {}
    if isinstance(classnames, Mapping):
        return dict(classnames)
    try:
        return parse_classnames(Path(classnames).expanduser().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise SourceError(
            f"cannot read class names from {classnames} ({error}): give a UTF-8 file of "
            "folder<TAB>name lines"
        ) from None
