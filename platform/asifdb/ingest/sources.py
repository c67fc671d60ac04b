"""Open a source (auto-detecting its layout), count its items and stream them by position. The
ingestion job calls `open_source`, `count_items` for its total and `iter_items` per batch.

A source is only ever opened under the configured roots (`roots.locate`), and its files only
read under its root (`local_files`); messages name paths relative to that root.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from asifdb.errors import InvalidInput
from asifdb.ingest.class_folders import list_classes, parse_classnames
from asifdb.ingest.img2dataset import is_shard_folder, list_folders, list_shards
from asifdb.ingest.items import Part, SourceItem
from asifdb.ingest.jsonl import JsonlFile
from asifdb.ingest.local_files import LocalFileError, read_file
from asifdb.ingest.roots import locate, relative
from asifdb.ingest.validate import DEFAULT_LIMITS, Limits

# A class-names file (folder<TAB>name lines): ImageNet-21k's is under 1 MB.
MAX_CLASSNAMES_BYTES = 16 * 1024 * 1024


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
    """A readable source, as `open_source` checked it: its real path, and the real path of the
    configured root that holds it (its files are read under it, reports name paths relative to
    it). Plain values: a job can store them and a worker rebuild the same Source with
    `Source(**stored)` (kind as its string)."""

    kind: SourceKind
    path: Path
    root: Path
    template: str | None = None
    classnames: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Rebuilt from stored plain values, kind and paths arrive as strings.
        object.__setattr__(self, "kind", SourceKind(self.kind))
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "root", Path(self.root))

    @property
    def relative(self) -> str:
        """The source as reports name it: its path relative to its root."""
        return relative(self.path, self.root)


def open_source(
    path: str | Path,
    *,
    roots: Sequence[Path | str],
    kind: SourceKind | str | None = None,
    template: str | None = None,
    classnames: str | Path | Mapping[str, str] | None = None,
) -> Source:
    """Check that `path` is a readable source under one of `roots` (Forbidden otherwise) and
    tell its kind (detected unless given).

    `template` (e.g. "a photo of a {}.") and `classnames` (a `folder<TAB>name` file under the
    roots, or a mapping) are for class folders only, and a template is what makes a folder read
    as class folders."""
    located = locate(path, roots=roots, what="source")
    location, root = located.path, located.root
    if not location.exists():
        raise SourceError(
            f"{located.relative} does not exist under {root}: check the path (it is read on "
            "the server)"
        )
    try:
        chosen = (
            SourceKind(kind) if kind is not None else _detect(location, template, located.relative)
        )
    except ValueError:
        kinds = ", ".join(member.value for member in SourceKind)
        raise SourceError(f"unknown source kind {kind!r}: use one of {kinds}") from None
    if chosen is not SourceKind.CLASS_FOLDERS and (template is not None or classnames):
        raise SourceError(
            f"a caption template and class names apply to class folders only, not to {chosen}: "
            "drop them, or pass kind='class_folders'"
        )
    _check_layout(location, chosen, located.relative)
    source = Source(chosen, location, root)
    if chosen is SourceKind.CLASS_FOLDERS:
        _check_template(template)
        source = Source(chosen, location, root, template, _read_classnames(classnames, roots))
    if not _parts(source):
        raise SourceError(
            f"{source.relative} holds nothing to read as {chosen}: check the path and kind"
        )
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
        for index, item in enumerate(part.read(skip, limits), start=skip):
            if stop is not None and offset + min(index, size - 1) >= stop:
                break
            yield item
        offset += size


def _parts(source: Source) -> Sequence[Part]:
    try:
        match source.kind:
            case SourceKind.WEBDATASET:
                return list_shards(source.path, root=source.root)
            case SourceKind.FILES:
                return list_folders(source.path, root=source.root)
            case SourceKind.JSONL:
                return [JsonlFile(source.path, source.root)]
            case SourceKind.CLASS_FOLDERS:
                assert source.template is not None
                return list_classes(
                    source.path, source.template, source.classnames, root=source.root
                )
    except OSError as error:
        raise SourceError(
            f"cannot read the source {source.relative}: {error.strerror or 'unreadable'}"
        ) from None


def _detect(path: Path, template: str | None, shown: str) -> SourceKind:
    if not path.is_dir():
        if path.suffix == ".tar":
            return SourceKind.WEBDATASET
        if path.suffix in (".jsonl", ".ndjson"):
            return SourceKind.JSONL
        raise SourceError(
            f"cannot tell what {shown} is: expected a .tar shard or a .jsonl file, or pass kind="
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
            f"{shown} looks like a folder of class folders: pass a caption template, "
            "e.g. template='a photo of a {}.'"
        )
    raise SourceError(
        f"{shown} holds no .tar shards, numbered shard folders or class folders: point at an "
        "img2dataset output folder, a .jsonl file, or a folder of class folders"
    )


def _check_layout(path: Path, kind: SourceKind, shown: str) -> None:
    wants_file = kind is SourceKind.JSONL or (kind is SourceKind.WEBDATASET and path.is_file())
    if wants_file and not path.is_file():
        what = "a folder" if path.is_dir() else "not a regular file"
        raise SourceError(f"a {kind} source is a file, and {shown} is {what}")
    if not wants_file and not path.is_dir():
        raise SourceError(f"a {kind} source is a folder, and {shown} is not one")


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


def _read_classnames(
    classnames: str | Path | Mapping[str, str] | None, roots: Sequence[Path | str]
) -> dict[str, str]:
    if classnames is None:
        return {}
    if isinstance(classnames, Mapping):
        return dict(classnames)
    return read_classnames(classnames, roots=roots)


def read_classnames(path: str | Path, *, roots: Sequence[Path | str]) -> dict[str, str]:
    """A class-names file under the roots (at most MAX_CLASSNAMES_BYTES), parsed."""
    located = locate(path, roots=roots, what="class names")
    try:
        data = read_file(located.path, root=located.root, limit=MAX_CLASSNAMES_BYTES)
        return parse_classnames(data.decode("utf-8"))
    except LocalFileError as error:
        problem = str(error)
    except UnicodeDecodeError as error:
        problem = f"not UTF-8 at byte {error.start}"
    raise SourceError(
        f"cannot read class names ({problem}): give a UTF-8 file of folder<TAB>name lines"
    )
