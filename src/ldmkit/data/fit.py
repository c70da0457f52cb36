"""Fitting an image of any size and shape to a training square: crop, pad, or a native crop.

- ``crop``: scale the shorter side to the resolution, then cut a square (centre or random).
- ``pad``: scale the longer side to the resolution and centre it on the background colour, so
  nothing is cut (a 39x7 sprite stays whole, a tall image keeps its head and feet).
- ``native``: cut a square at the image's own scale (no resampling of pixels that are already
  fine); only images smaller than the square are scaled up first. For autoencoders, which
  should see detail at the scale it has.
- ``bucket``: scale and crop to the aspect-ratio bucket nearest the image's shape
  (`data.buckets`): about the square's area, sides multiples of `bucket_step`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageColor

from ldmkit.data.buckets import bucket_sizes, nearest_bucket

Fit = Literal["crop", "pad", "native", "bucket"]
FITS: tuple[str, ...] = ("crop", "pad", "native", "bucket")


def parse_color(value: str, name: str = "data.background") -> tuple[int, int, int]:
    """An RGB triple from a colour name or #hex; a ValueError naming `name` otherwise."""
    try:
        rgb = ImageColor.getrgb(value)
    except ValueError:
        raise ValueError(
            f"{name}={value!r} is not a colour; use a name like 'white' or 'black' or a hex "
            "value like '#808080'"
        ) from None
    return rgb[0], rgb[1], rgb[2]


def _resample(scale: float) -> Image.Resampling:
    # Lanczos anti-aliases when shrinking; bicubic is the usual choice when enlarging.
    return Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC


def _offset(extra: int, position: float) -> int:
    # floor(u * (extra + 1)) maps u ~ U[0, 1) to a uniform integer offset in [0, extra].
    return min(int(position * (extra + 1)), extra)


def resize_and_crop(
    image: Image.Image, resolution: int, left: float = 0.5, top: float = 0.5
) -> Image.Image:
    """Resize the shorter side to `resolution`, then crop a square; (0.5, 0.5) is the centre."""
    return cover_and_crop(image, resolution, resolution, left, top)


def cover_and_crop(
    image: Image.Image, width: int, height: int, left: float = 0.5, top: float = 0.5
) -> Image.Image:
    """Scale the image to cover `width` x `height`, then crop that; (0.5, 0.5) is the centre."""
    scale = max(width / image.size[0], height / image.size[1])
    new_size = (
        max(width, round(image.size[0] * scale)),
        max(height, round(image.size[1] * scale)),
    )
    if new_size != image.size:
        image = image.resize(new_size, resample=_resample(scale))
    x0 = _offset(new_size[0] - width, left)
    y0 = _offset(new_size[1] - height, top)
    return image.crop((x0, y0, x0 + width, y0 + height))


def resize_and_pad(
    image: Image.Image, resolution: int, background: tuple[int, int, int]
) -> Image.Image:
    """Resize the longer side to `resolution` and centre the image on a `background` square."""
    width, height = image.size
    scale = resolution / max(width, height)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if new_size != image.size:
        image = image.resize(new_size, resample=_resample(scale))
    square = Image.new("RGB", (resolution, resolution), background)
    square.paste(image, ((resolution - new_size[0]) // 2, (resolution - new_size[1]) // 2))
    return square


def native_crop(
    image: Image.Image, resolution: int, left: float = 0.5, top: float = 0.5
) -> Image.Image:
    """A `resolution` square at the image's own scale; smaller images are scaled up to fit."""
    if min(image.size) < resolution:
        return resize_and_crop(image, resolution, left, top)
    x0 = _offset(image.size[0] - resolution, left)
    y0 = _offset(image.size[1] - resolution, top)
    return image.crop((x0, y0, x0 + resolution, y0 + resolution))


@dataclass(frozen=True)
class ImageFit:
    """How an image becomes a (3, R, R) tensor ((3, H, W) for buckets). `random` draws the crop
    position and the flip from ``np.random.default_rng([seed, index])``, so an item is the same
    in every epoch and on every process."""

    resolution: int
    fit: Fit = "crop"
    random: bool = False
    flip: bool = False
    seed: int = 0
    background: tuple[int, int, int] = (255, 255, 255)
    bucket_step: int = 16

    def __post_init__(self) -> None:
        if not isinstance(self.resolution, int) or self.resolution < 1:
            raise ValueError(f"resolution must be a positive int, got {self.resolution!r}.")
        if self.fit not in FITS:
            raise ValueError(f"data.fit must be one of {', '.join(FITS)}, got {self.fit!r}.")
        if self.fit == "bucket":
            bucket_sizes(self.resolution, self.bucket_step)  # a clear error for a bad step

    def size_for(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) an image of this size becomes."""
        if self.fit != "bucket":
            return self.resolution, self.resolution
        return nearest_bucket(width, height, bucket_sizes(self.resolution, self.bucket_step))

    def __call__(self, image: Image.Image, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, index])
        left, top, flip_draw = (float(u) for u in rng.random(3))  # always draw all three
        if not self.random:
            left = top = 0.5
        if self.fit == "pad":
            image = resize_and_pad(image, self.resolution, self.background)
        elif self.fit == "native":
            image = native_crop(image, self.resolution, left, top)
        elif self.fit == "bucket":
            image = cover_and_crop(image, *self.size_for(*image.size), left, top)
        else:
            image = resize_and_crop(image, self.resolution, left, top)
        if self.flip and flip_draw < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return image_to_tensor(image)


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """8-bit RGB PIL image -> float32 tensor (3, H, W) in [-1, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)  # (H, W, 3)
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).to(torch.float32)
    return tensor / 127.5 - 1.0
