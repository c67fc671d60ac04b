"""Image bytes to the RGB PIL image every image encoder expects. Untrusted bytes are validated
by `asifdb.ingest` before they get here; a failure to decode is still the caller's input error."""

import io

from PIL import Image, ImageOps, UnidentifiedImageError

from asifdb.errors import InvalidInput

_WHITE = (255, 255, 255)


def decode_image(data: bytes) -> Image.Image:
    """Decode encoded image bytes (any format Pillow reads) into an upright RGB image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return to_rgb(image)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInput(f"cannot decode image ({len(data)} bytes): {exc}") from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB view of any PIL image: EXIF rotation applied, transparency flattened onto white.

    Grayscale, palette, CMYK and 16-bit images are converted. Transparent pixels are composited
    onto white, because their colour channels are undefined (often black) and viewers show
    them on a light background; a plain `convert("RGB")` would keep whatever they hold.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
