"""The rules user input is checked against where it enters (the command line, the HTTP API,
Python callers), before any work starts: counts, sizes, strengths, output image files. Each
failure is an `InputError` (a ValueError) naming the input, the value and the fix; the CLI turns
it into exit code 2. Imports nothing heavy, so the CLI can check before it loads torch."""

import math
import os
from pathlib import Path
from typing import Any

# The image formats written for samples: PNG keeps the generation parameters in its text chunk.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


class InputError(ValueError):
    """A user input is invalid; the message names it, its value and the fix. `field` names the
    input where the caller knows it (the HTTP API answers 422 with it)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """An integer >= `minimum` (how many images, samples per class, ...)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return value


def check_side(name: str, value: Any) -> int | None:
    """None (the default) or a side >= 1 (a latent side, a tile); 0 is not a silent default."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InputError(
            f"{name} must be an integer >= 1 (leave it out for the default); got {value!r}"
        )
    return value


def check_fraction(name: str, value: Any, low_open: bool = True) -> float:
    """A finite number in (0, 1] (or [0, 1] when `low_open` is false)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    low = value > 0 if low_open else value >= 0
    if not (ok and low and value <= 1):
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise InputError(f"{name} must be a number in {interval}; got {value!r}")
    return float(value)


def check_output_image(name: str, path: Path) -> Path:
    """An image file that can be written: a known image suffix, and a folder that exists (it is
    made) and is writable; checked before the work whose result it holds."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(
            f"{name} {path}: {path.suffix or 'no suffix'} is not an image format this writes; "
            f"use one of {', '.join(IMAGE_SUFFIXES)} (.png keeps the parameters)"
        )
    if path.is_dir():
        raise InputError(f"{name} {path} is a folder; name the image file to write")
    check_writable_folder(name, path.parent)
    return path


def check_writable_folder(name: str, folder: Path) -> Path:
    """A folder that exists (made if missing) and can be written to."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"{name}: cannot make the folder {folder}: {error.strerror}") from error
    if not os.access(folder, os.W_OK):
        raise InputError(f"{name}: the folder {folder} is not writable; choose another")
    return folder
