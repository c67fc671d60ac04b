"""Decoding image bytes for the encoders: every mode becomes RGB, bad bytes are input errors."""

import io
from pathlib import Path

import pytest
from PIL import Image

from asifdb.encoders import decode_image
from asifdb.errors import InvalidInput


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def test_grayscale_jpeg_from_tiny_imagenet_becomes_rgb(gray_jpeg: Path) -> None:
    image = decode_image(gray_jpeg.read_bytes())
    assert (image.mode, image.size) == ("RGB", (64, 64))
    gray = Image.open(gray_jpeg)
    assert image.getpixel((10, 10)) == (gray.getpixel((10, 10)),) * 3


def test_transparent_pixels_are_flattened_onto_white() -> None:
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    image = decode_image(_encode(rgba, "PNG"))
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 0, 0)
    assert image.getpixel((5, 5)) == (255, 255, 255)


def test_palette_and_cmyk_images_become_rgb() -> None:
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 0, 128, 255])
    cmyk = Image.new("CMYK", (8, 8), (0, 0, 0, 0))
    assert decode_image(_encode(palette, "PNG")).getpixel((1, 1)) == (0, 128, 255)
    assert decode_image(_encode(cmyk, "JPEG")).mode == "RGB"


def test_exif_rotation_is_applied() -> None:
    wide = Image.new("RGB", (40, 20), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    wide.save(buffer, "JPEG", exif=exif)
    assert decode_image(buffer.getvalue()).size == (20, 40)


@pytest.mark.parametrize("data", [b"", b"not an image", b"\xff\xd8\xff\xe0 truncated jpeg"])
def test_undecodable_bytes_are_an_input_error(data: bytes) -> None:
    with pytest.raises(InvalidInput, match="cannot decode image"):
        decode_image(data)
