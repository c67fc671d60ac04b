"""validate(): what goes in (hashed, measured, caption normalised) and why the rest is rejected."""

import hashlib
from collections.abc import Callable

import pytest

from asifdb.encoders.images import decode_image
from asifdb.ingest import (
    DEFAULT_LIMITS,
    Limits,
    RejectCode,
    Rejected,
    RejectReason,
    SourceItem,
    ValidItem,
    normalise_caption,
    validate,
)


def _item(image: bytes | None, caption: str | None = "a cat") -> SourceItem:
    return SourceItem("k", image, caption, "somewhere/cat.jpg", {"licence": "CC0"})


def _code(item: SourceItem, limits: Limits = DEFAULT_LIMITS) -> str:
    result = validate(item, limits)
    return "ok" if isinstance(result, ValidItem) else result.reason.code


def test_valid_item_carries_hash_size_format_and_normalised_caption(real_samples) -> None:
    jpg = real_samples[0][1]
    result = validate(_item(jpg, " \u00a0Cafe\u0301\tau  lait\n\x00 "))

    assert isinstance(result, ValidItem)
    assert result.sha256 == hashlib.sha256(jpg).hexdigest()
    assert (result.width, result.height, result.format, result.mime_type) == (
        64,
        64,
        "JPEG",
        "image/jpeg",
    )
    assert result.caption == "Caf\u00e9 au lait"
    assert result.image_bytes == jpg
    assert (result.key, result.source_uri, result.metadata) == (
        "k",
        "somewhere/cat.jpg",
        {"licence": "CC0"},
    )


@pytest.mark.parametrize(
    ("mode", "fmt"), [("RGB", "JPEG"), ("RGBA", "PNG"), ("P", "GIF"), ("L", "PNG")]
)
def test_the_decode_is_kept_for_the_encoder_and_equals_decoding_again(
    mode: str, fmt: str, image_bytes: Callable[..., bytes]
) -> None:
    data = image_bytes(fmt, (40, 30), mode=mode)
    result = validate(_item(data))

    assert isinstance(result, ValidItem) and result.decoded is not None
    assert result.for_encoder is result.decoded
    again = decode_image(data)  # what an encoder does with the bytes
    assert result.decoded.mode == again.mode == "RGB"
    assert result.decoded.tobytes() == again.tobytes()


def test_a_large_image_is_not_kept_decoded(image_bytes: Callable[..., bytes]) -> None:
    data = image_bytes("PNG", (40, 30))
    result = validate(_item(data), Limits(keep_decoded_pixels=40 * 30 - 1))

    assert isinstance(result, ValidItem) and result.decoded is None
    assert result.for_encoder == data


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  a   b  ", "a b"),
        ("line\r\nbreak\ttab", "line break tab"),
        ("nul\x00inside", "nul inside"),
        ("e\u0301", "\u00e9"),
        ("\u3000wide\u2003space\u00a0", "wide space"),
    ],
)
def test_normalise_caption(text: str, expected: str) -> None:
    assert normalise_caption(text) == expected


@pytest.mark.parametrize(
    ("mode", "fmt"), [("L", "JPEG"), ("P", "GIF"), ("RGBA", "PNG"), ("CMYK", "TIFF"), ("1", "BMP")]
)
def test_other_modes_and_formats_convert_to_rgb(
    mode: str, fmt: str, image_bytes: Callable[..., bytes]
) -> None:
    assert _code(_item(image_bytes(fmt, (40, 30), mode=mode))) == "ok"


def test_reader_reason_wins(real_samples) -> None:
    reason = RejectReason(RejectCode.CORRUPT_SHARD, "shard 00003.tar is cut short")
    item = SourceItem("k", real_samples[0][1], "a cat", "x", {}, reason)
    result = validate(item)
    assert isinstance(result, Rejected) and result.reason == reason
    assert (result.key, result.caption, result.source_uri) == ("k", "a cat", "x")


def test_image_rejections(real_samples, image_bytes: Callable[..., bytes]) -> None:
    jpg = real_samples[0][1]
    ppm = image_bytes("PPM", (32, 32))
    assert _code(_item(None)) == RejectCode.MISSING_IMAGE
    assert _code(_item(b"")) == RejectCode.EMPTY_IMAGE
    assert _code(_item(b"<html>not found</html>")) == RejectCode.NOT_AN_IMAGE
    # Pillow decodes PPM, but only web formats are accepted.
    assert _code(_item(ppm)) == RejectCode.NOT_AN_IMAGE
    assert _code(_item(jpg[:300])) == RejectCode.CORRUPT_IMAGE
    assert _code(_item(jpg[:-200])) == RejectCode.CORRUPT_IMAGE
    assert _code(_item(image_bytes("PNG", (7, 100)))) == RejectCode.IMAGE_TOO_SMALL
    assert _code(_item(jpg), Limits(max_image_bytes=len(jpg) - 1)) == RejectCode.IMAGE_TOO_LARGE
    assert _code(_item(jpg), Limits(max_pixels=64 * 64 - 1)) == RejectCode.DECOMPRESSION_BOMB
    assert _code(_item(jpg), Limits(min_side=65)) == RejectCode.IMAGE_TOO_SMALL
    assert _code(_item(jpg), Limits(max_pixels=64 * 64, min_side=64)) == "ok"


def test_damaged_png_is_corrupt(image_bytes: Callable[..., bytes]) -> None:
    png = bytearray(image_bytes("PNG", (64, 64)))
    idat = png.index(b"IDAT")
    png[idat + 10 : idat + 20] = b"\xff" * 10
    assert _code(_item(bytes(png))) == RejectCode.CORRUPT_IMAGE


@pytest.mark.parametrize("side", [10_000, 20_000], ids=["pillow-warning", "pillow-error"])
def test_decompression_bombs_are_rejected(side: int, bomb_png: Callable[[int], bytes]) -> None:
    bomb = bomb_png(side)
    assert len(bomb) < 100_000
    # A limit above Pillow's own shows that Pillow's warning and error are rejections too.
    result = validate(_item(bomb), Limits(max_pixels=10**12))
    assert isinstance(result, Rejected)
    assert result.reason.code is RejectCode.DECOMPRESSION_BOMB
    assert _code(_item(bomb)) == RejectCode.DECOMPRESSION_BOMB


def test_caption_rejections(real_samples) -> None:
    jpg = real_samples[0][1]
    assert _code(_item(jpg, None)) == RejectCode.MISSING_CAPTION
    assert _code(_item(jpg, "")) == RejectCode.EMPTY_CAPTION
    assert _code(_item(jpg, " \n\t\u3000 ")) == RejectCode.EMPTY_CAPTION
    assert _code(_item(jpg, "a" * 1000)) == "ok"
    assert _code(_item(jpg, "a" * 1001)) == RejectCode.CAPTION_TOO_LONG
    assert _code(_item(jpg, "a " * 600)) == RejectCode.CAPTION_TOO_LONG
    assert _code(_item(jpg, "a" * 11), Limits(max_caption_chars=10)) == RejectCode.CAPTION_TOO_LONG
    assert _code(_item(jpg, "bad \udcff tail")) == RejectCode.CAPTION_NOT_UTF8
    result = validate(_item(jpg, "a" * 1001))
    assert isinstance(result, Rejected) and "1,001" in result.reason.message


@pytest.mark.parametrize(
    ("field", "poison"),
    [
        ("key", "cat\x00.jpg"),
        ("source_uri", "upload/cat\x00.jpg"),
        ("metadata", {"upload_name": "cat\x00.jpg", "tags": ["ok", "b\x00d"]}),
        ("metadata", {"note": "lone \ud800 surrogate"}),
    ],
)
def test_what_the_database_cannot_store_is_a_reject_that_can_be_stored(
    real_samples, field: str, poison: object
) -> None:
    # A NUL in a file name or in metadata used to fail the whole batch on a database error.
    fields = {"key": "k", "source_uri": "x", "metadata": {}}
    fields[field] = poison
    item = SourceItem(
        fields["key"], real_samples[0][1], "a cat", fields["source_uri"], fields["metadata"]
    )
    result = validate(item)
    assert isinstance(result, Rejected) and result.reason.code == RejectCode.BAD_RECORD
    assert field in result.reason.message
    stored = repr((result.key, result.source_uri, result.caption, result.metadata))
    assert "\\x00" not in stored and "\\ud800" not in stored
    assert "\ufffd" in stored or "?" in stored
