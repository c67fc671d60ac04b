"""Judge a raw SourceItem: a ValidItem (hashed, decoded, caption normalised) or a Rejected with a
stable code and a message. The ingestion job calls `validate` on every item a reader yields."""

import hashlib
import io
import struct
import unicodedata
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image, UnidentifiedImageError

from asifdb.encoders.images import to_rgb
from asifdb.ingest.items import RejectCode, RejectReason, SourceItem, image_too_large

# Decoders for these only: EPS shells out to Ghostscript, and rarer plugins have had CVEs.
_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
# Pillow's plugins report damaged data with any of these, depending on the format.
_DECODER_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    TypeError,
    ZeroDivisionError,
    struct.error,
)
# C0 and C1 control characters, NUL included: PostgreSQL text cannot hold NUL.
_CONTROLS = {code: " " for code in [*range(0x20), *range(0x7F, 0xA0)]}


@dataclass(frozen=True)
class Limits:
    """What an acceptable item may be. Defaults suit web-crawled pairs."""

    max_image_bytes: int = 32 * 1024 * 1024
    # A caption or metadata file (or tar member), a JSONL line: none is read past this.
    max_text_bytes: int = 1024 * 1024
    max_pixels: int = 40_000_000
    min_side: int = 8
    max_caption_chars: int = 1_000
    # Up to this many pixels the validated decode is kept for the encoder (3 bytes a pixel: a
    # batch of 256 holds at most 768 MB); larger images are decoded again when encoded.
    keep_decoded_pixels: int = 1_000_000


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class ValidItem:
    """An item that goes in: its image verified to decode to RGB, its caption normalised."""

    key: str
    image_bytes: bytes = field(repr=False)
    sha256: str
    width: int
    height: int
    format: str
    mime_type: str
    caption: str
    source_uri: str
    metadata: dict[str, Any] = field(default_factory=dict)
    # The upright RGB image the check decoded, when small enough to keep (Limits).
    decoded: Image.Image | None = field(default=None, repr=False, compare=False)

    @property
    def for_encoder(self) -> Image.Image | bytes:
        """What to hand an image encoder: the kept decode, else the bytes to decode again."""
        return self.decoded if self.decoded is not None else self.image_bytes


@dataclass(frozen=True)
class Rejected:
    """An item that does not go in, with what it was read as and why."""

    key: str
    reason: RejectReason
    source_uri: str
    caption: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Image:
    data: bytes
    format: str
    width: int
    height: int
    decoded: Image.Image | None = None


def validate(item: SourceItem, limits: Limits = DEFAULT_LIMITS) -> ValidItem | Rejected:
    """The item made valid, or rejected with the first problem found (cheap checks first)."""
    if item.reject_reason is not None:
        return _rejected(item, item.reject_reason)
    unstorable = [name for name in ("key", "source_uri", "metadata") if _unstorable(item, name)]
    if unstorable:
        return _rejected(
            item,
            RejectReason(
                RejectCode.BAD_RECORD,
                f"the item's {' and '.join(unstorable)} hold a NUL byte or a lone surrogate, "
                "which the database cannot store: remove it",
            ),
        )
    caption = _check_caption(item.caption, limits)
    if isinstance(caption, RejectReason):
        return _rejected(item, caption)
    image = _check_image(item.image_bytes, limits)
    if isinstance(image, RejectReason):
        return _rejected(item, image)
    return ValidItem(
        key=item.key,
        image_bytes=image.data,
        sha256=hashlib.sha256(image.data).hexdigest(),
        width=image.width,
        height=image.height,
        format=image.format,
        mime_type=Image.MIME.get(image.format, "application/octet-stream"),
        caption=caption,
        source_uri=item.source_uri,
        metadata=item.metadata,
        decoded=image.decoded,
    )


def _rejected(item: SourceItem, reason: RejectReason) -> Rejected:
    # A reject is stored too: what it keeps must be storable, or one item fails its batch.
    return Rejected(
        storable(item.key),
        reason,
        storable(item.source_uri),
        None if item.caption is None else storable(item.caption),
        storable(item.metadata),
    )


def storable(value: Any) -> Any:
    """`value` with every string cleaned of what PostgreSQL refuses (NUL, lone surrogates)."""
    if isinstance(value, str):
        cleaned = value.replace("\x00", "\ufffd")
        return cleaned.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(storable(v) for v in value)
    return value


def _unstorable(item: SourceItem, name: str) -> bool:
    value = getattr(item, name)
    return storable(value) != value


def normalise_caption(text: str) -> str:
    """NFC, control characters to spaces, whitespace runs collapsed to one space, stripped."""
    return " ".join(unicodedata.normalize("NFC", text).translate(_CONTROLS).split())


def _check_caption(text: str | None, limits: Limits) -> str | RejectReason:
    if text is None:
        return RejectReason(RejectCode.MISSING_CAPTION, "the item has no caption")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        # JSON escapes can carry lone surrogates, which no UTF-8 column can store.
        return RejectReason(
            RejectCode.CAPTION_NOT_UTF8,
            f"caption is not valid UTF-8 (a lone surrogate at character {error.start})",
        )
    caption = normalise_caption(text)
    if not caption:
        return RejectReason(RejectCode.EMPTY_CAPTION, "caption is empty or only whitespace")
    if len(caption) > limits.max_caption_chars:
        return RejectReason(
            RejectCode.CAPTION_TOO_LONG,
            f"caption has {len(caption):,} characters, over the limit of "
            f"{limits.max_caption_chars:,}: shorten it",
        )
    return caption


def _check_image(data: bytes | None, limits: Limits) -> _Image | RejectReason:
    if data is None:
        return RejectReason(RejectCode.MISSING_IMAGE, "the item has no image")
    if not data:
        return RejectReason(RejectCode.EMPTY_IMAGE, "image file is empty (0 bytes)")
    if len(data) > limits.max_image_bytes:
        return image_too_large(len(data), limits.max_image_bytes)
    with warnings.catch_warnings():
        # Pillow only warns between its limit and twice it; both mean a bomb here. (The filter
        # is process-wide, but the default max_pixels is under Pillow's limit anyway.)
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=_FORMATS) as image:
                found = _Image(data, str(image.format), image.width, image.height)
                if found.width * found.height > limits.max_pixels:
                    return _bomb(f"{found.width}x{found.height} pixels", limits)
                if min(found.width, found.height) < limits.min_side:
                    return RejectReason(
                        RejectCode.IMAGE_TOO_SMALL,
                        f"image is {found.width}x{found.height}, under the minimum side of "
                        f"{limits.min_side} pixels",
                    )
                # Converting decodes every pixel: truncated or damaged data fails here. It is
                # the conversion the encoders make (EXIF rotation, transparency on white).
                rgb = to_rgb(image)
                if found.width * found.height <= limits.keep_decoded_pixels:
                    found = replace(found, decoded=rgb)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
            return _bomb(str(error), limits)
        except UnidentifiedImageError:
            return RejectReason(
                RejectCode.NOT_AN_IMAGE,
                f"not a readable image: expected {', '.join(_FORMATS)}",
            )
        except _DECODER_ERRORS as error:
            # The decoder's message can quote the file's bytes: only its kind is said.
            return RejectReason(
                RejectCode.CORRUPT_IMAGE,
                f"image is damaged or truncated (the decoder raised {type(error).__name__})",
            )
    return found


def _bomb(detail: str, limits: Limits) -> RejectReason:
    return RejectReason(
        RejectCode.DECOMPRESSION_BOMB,
        f"image decodes to too many pixels ({detail}; limit {limits.max_pixels:,}): "
        "downscale it before ingesting",
    )
