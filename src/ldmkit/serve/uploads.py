"""Images sent with a job (base64, or a data URL as a browser's canvas gives it): size-limited
before decoding, decompression bombs refused, decoded fully, and kept as PNG files that the
request then names. Every refusal is an InputError naming the field (the API's 422)."""

import base64
import binascii
import io
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ldmkit.inputs import InputError
from ldmkit.serve.config import Limits

IMAGE_FIELDS = ("init_image", "mask", "low_res", "semantic")


def decode_upload(field: str, text: str, limits: Limits) -> Image.Image:
    """The image in `text` (base64 or "data:image/...;base64,..."), checked and decoded."""
    if not isinstance(text, str) or not text:
        raise InputError(f"{field} must be a base64-encoded image or a data URL", field)
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if ";base64" not in header:
            raise InputError(
                f"{field}: a data URL must be base64 (data:image/png;base64,...)", field
            )
    if len(text) * 3 // 4 > limits.max_upload_bytes:
        raise InputError(
            f"{field} is larger than {limits.max_upload_bytes // 2**20} MiB; send a smaller image",
            field,
        )
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{field} is not valid base64", field) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                width, height = opened.size
                if width * height > limits.max_upload_pixels:
                    raise InputError(
                        f"{field} is {width}x{height} pixels, more than the "
                        f"{limits.max_upload_pixels} allowed",
                        field,
                    )
                opened.load()
                image = opened.convert("RGB")
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise InputError(f"{field} decompresses to too many pixels (refused)", field) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{field} is not an image this can read ({error})", field) from None
    return image


def save_upload(image: Image.Image, folder: Path, name: str) -> Path:
    """The decoded upload as folder/name.png (written whole, then renamed)."""
    path = folder / f"{name}.png"
    temporary = folder / f".{name}.tmp"
    image.save(temporary, format="PNG")
    temporary.replace(path)
    return path
