"""What source readers yield: raw items, the stable reject codes and the Part protocol. Readers
(img2dataset, jsonl, class_folders) build these; validate.py judges."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from asifdb.ingest.validate import Limits


class RejectCode(StrEnum):
    """Why an item did not go in. Values are stored in the database: never rename one."""

    MISSING_IMAGE = "missing_image"
    UNREADABLE_FILE = "unreadable_file"
    REMOTE_IMAGE = "remote_image"
    EMPTY_IMAGE = "empty_image"
    IMAGE_TOO_LARGE = "image_too_large"
    NOT_AN_IMAGE = "not_an_image"
    CORRUPT_IMAGE = "corrupt_image"
    DECOMPRESSION_BOMB = "decompression_bomb"
    IMAGE_TOO_SMALL = "image_too_small"
    MISSING_CAPTION = "missing_caption"
    EMPTY_CAPTION = "empty_caption"
    CAPTION_TOO_LONG = "caption_too_long"
    CAPTION_NOT_UTF8 = "caption_not_utf8"
    BAD_RECORD = "bad_record"
    CORRUPT_SHARD = "corrupt_shard"
    NOT_A_FILE = "not_a_file"
    OUTSIDE_SOURCE = "outside_source"
    REFUSED_BY_DATABASE = "refused_by_database"


@dataclass(frozen=True)
class RejectReason:
    """A stable code for machines and a message for the person who fixes the data."""

    code: RejectCode
    message: str


@dataclass(frozen=True)
class SourceItem:
    """One raw pair as read, before validation; `reject_reason` is set when reading failed."""

    key: str
    image_bytes: bytes | None = field(repr=False)
    caption: str | None
    source_uri: str
    metadata: dict[str, Any] = field(default_factory=dict)
    reject_reason: RejectReason | None = None


class Part(Protocol):
    """A unit a source splits into (a tar shard, a folder, a JSONL file), read in order."""

    @property
    def name(self) -> str: ...

    def declared_count(self) -> int:
        """How many items the part says it holds, read without images: positions and totals."""
        ...

    def read(self, skip: int, limits: "Limits") -> Iterator[SourceItem]:
        """Its items in stable order, without reading the image bytes of the first `skip`;
        every file read is bounded by `limits` (images, and caption or metadata files)."""
        ...


def decode_caption(raw: bytes) -> str | RejectReason:
    """A caption file's text (a leading byte-order mark dropped), or why it is not UTF-8."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return RejectReason(
            RejectCode.CAPTION_NOT_UTF8,
            f"caption is not valid UTF-8 (byte {error.start}): re-save it as UTF-8",
        )


def image_too_large(size: int, limit: int) -> RejectReason:
    """The reason for an image file over the byte limit (readers skip reading such files)."""
    return RejectReason(
        RejectCode.IMAGE_TOO_LARGE,
        f"image is {size:,} bytes, over the limit of {limit:,}: downscale or recompress it",
    )
