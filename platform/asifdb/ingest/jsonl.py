"""Reader for a JSONL file of `{"image": local path, "caption": text, ...provenance}` lines, one
Part for sources.py. Paths are relative to the file's folder; URLs are refused, never fetched."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from asifdb.ingest.items import RejectCode, RejectReason, SourceItem, read_image_file


@dataclass(frozen=True)
class JsonlFile:
    """A JSONL source. Each non-blank line is an item keyed `NAME:LINE` (1-based line number)."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def declared_count(self) -> int:
        return sum(1 for _ in self._lines())

    def read(self, skip: int, max_image_bytes: int) -> Iterator[SourceItem]:
        for index, (number, line) in enumerate(self._lines()):
            if index >= skip:
                yield self._item(f"{self.name}:{number}", line, max_image_bytes)

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        with self.path.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield number, line

    def _item(self, key: str, line: bytes, max_image_bytes: int) -> SourceItem:
        record = _parse(line)
        if isinstance(record, RejectReason):
            return _reject(key, str(self.path), {}, record)
        image, caption = record.pop("image", None), record.pop("caption", None)
        if not isinstance(image, str) or not image:
            reason = RejectReason(
                RejectCode.BAD_RECORD, 'line needs "image": the path of a local image file'
            )
            return _reject(key, str(self.path), record, reason)
        if caption is not None and not isinstance(caption, str):
            reason = RejectReason(RejectCode.BAD_RECORD, '"caption" must be a string')
            return _reject(key, image, record, reason)
        location = _local_path(image, self.path.parent)
        if isinstance(location, RejectReason):
            return _reject(key, image, record, location)
        data = read_image_file(location, max_image_bytes)
        return SourceItem(
            key=key,
            image_bytes=data if isinstance(data, bytes) else None,
            caption=caption,
            source_uri=str(location),
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
            f"{image} is a URL and images are never fetched over the network: download them "
            "first (e.g. with img2dataset) and point the JSONL at the local files",
        )
    return folder / image


def _reject(key: str, uri: str, metadata: dict[str, Any], reason: RejectReason) -> SourceItem:
    return SourceItem(key, None, None, uri, metadata, reason)
