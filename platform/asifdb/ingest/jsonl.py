"""Reader for a JSONL file of `{"image": local path, "caption": text, ...provenance}` lines, one
Part for sources.py. Paths are relative to the file's folder and must lie under the source's
root (local_files reads them); URLs are refused, never fetched."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from asifdb.ingest.items import RejectCode, RejectReason, SourceItem
from asifdb.ingest.local_files import LISTING, open_file, read_item_file
from asifdb.ingest.roots import inside, relative

if TYPE_CHECKING:
    from asifdb.ingest.validate import Limits

_PIECE = 1 << 16  # counting, and dropping an over-long line, read lines in pieces of this


@dataclass(frozen=True)
class JsonlFile:
    """A JSONL source. Each non-blank line is an item keyed `NAME:LINE` (1-based line number);
    a line over the text limit is one too, rejected unread. `root` is the source's root."""

    path: Path
    root: Path

    @property
    def name(self) -> str:
        return self.path.name

    def declared_count(self) -> int:
        return sum(1 for _ in self._lines(_PIECE))

    def read(self, skip: int, limits: "Limits") -> Iterator[SourceItem]:
        for index, (number, line) in enumerate(self._lines(limits.max_text_bytes)):
            if index >= skip:
                yield self._item(f"{self.name}:{number}", line, limits)

    def _lines(self, limit: int) -> Iterator[tuple[int, bytes | None]]:
        """Each non-blank line with its number; None for a line over `limit` bytes, whose rest
        is read in pieces and dropped (so counting and reading agree on which lines count)."""
        with open_file(self.path, root=self.root, role=LISTING) as lines:
            number = 0
            while line := lines.readline(limit + 1):
                number += 1
                over = len(line) > limit and not line.endswith(b"\n")
                blank, rest = not line.strip(), line
                while over and rest and not rest.endswith(b"\n"):
                    rest = lines.readline(_PIECE)
                    blank = blank and not rest.strip()
                if not blank:
                    yield number, None if over else line

    def _item(self, key: str, line: bytes | None, limits: "Limits") -> SourceItem:
        where = relative(self.path, self.root)
        if line is None:
            reason = RejectReason(
                RejectCode.BAD_RECORD,
                f"line is over {limits.max_text_bytes:,} bytes (the limit for one line)",
            )
            return _reject(key, where, {}, reason)
        record = _parse(line)
        if isinstance(record, RejectReason):
            return _reject(key, where, {}, record)
        image, caption = record.pop("image", None), record.pop("caption", None)
        if not isinstance(image, str) or not image:
            reason = RejectReason(
                RejectCode.BAD_RECORD, 'line needs "image": the path of a local image file'
            )
            return _reject(key, where, record, reason)
        if caption is not None and not isinstance(caption, str):
            reason = RejectReason(RejectCode.BAD_RECORD, '"caption" must be a string')
            return _reject(key, where, record, reason)
        location = _local_path(image, self.path.parent)
        if isinstance(location, RejectReason):
            return _reject(key, where, record, location)
        data = read_item_file(location, root=self.root, limit=limits.max_image_bytes)
        found = inside(self.root, location)
        return SourceItem(
            key=key,
            image_bytes=data if isinstance(data, bytes) else None,
            caption=caption,
            # Provenance names the file under the root, never a path outside it.
            source_uri=relative(found, self.root) if found else where,
            metadata=record,
            reject_reason=data if isinstance(data, RejectReason) else None,
        )


def _parse(line: bytes) -> dict[str, Any] | RejectReason:
    try:
        record = json.loads(line)
    except UnicodeDecodeError as error:
        return RejectReason(
            RejectCode.BAD_RECORD, f"line is not valid UTF-8 (byte {error.start}): re-save as UTF-8"
        )
    except ValueError as error:
        return RejectReason(RejectCode.BAD_RECORD, f"line is not valid JSON ({error})")
    if not isinstance(record, dict):
        return RejectReason(RejectCode.BAD_RECORD, "line is not a JSON object")
    return record


def _local_path(image: str, folder: Path) -> Path | RejectReason:
    """The file an `image` value names: absolute, relative to the JSONL's folder, or file://."""
    parts = urlsplit(image)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme:
        return RejectReason(
            RejectCode.REMOTE_IMAGE,
            "the image is a URL and images are never fetched over the network: download them "
            "first (e.g. with img2dataset) and point the JSONL at the local files",
        )
    return folder / image


def _reject(key: str, uri: str, metadata: dict[str, Any], reason: RejectReason) -> SourceItem:
    return SourceItem(key, None, None, uri, metadata, reason)
