"""Drawing primitives for the procedural `shapes` dataset: outlines, rasterisation, backgrounds.

Everything here is plain geometry and pixels; the names, classes and captions live in `shapes.py`.
Objects are drawn with Pillow at `supersample` times the output resolution and box-filtered down,
which gives antialiased edges whose coverage (alpha) is also the ground-truth mask.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

BackgroundKind = Literal["plain", "gradient", "noise"]
BACKGROUND_KINDS: tuple[BackgroundKind, ...] = ("plain", "gradient", "noise")

_CIRCLE_VERTICES = 64  # a 64-gon deviates < 0.25 px from a circle up to 512 px images at 4x
_RING_INNER = 0.55  # inner / outer radius of a ring
_STAR_INNER = 0.45  # inner / outer radius of a five-pointed star
_BACKGROUND_SATURATION = 0.12  # HSV saturation cap: backgrounds are greys and faint tints
_BACKGROUND_VALUE = (0.42, 0.88)  # HSV value range of background colours


@dataclass(frozen=True)
class Outline:
    """A shape as polygons around its centre (pixels): fill 255 adds area, fill 0 cuts a hole."""

    polygons: tuple[np.ndarray, ...]  # each (K, 2) as (x, y), relative to the centre
    fills: tuple[int, ...]

    def extent(self) -> tuple[float, float, float, float]:
        """Geometric box (x0, y0, x1, y1) relative to the centre."""
        points = np.concatenate([p for p, f in zip(self.polygons, self.fills, strict=True) if f])
        x0, y0 = points.min(axis=0)
        x1, y1 = points.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)


def _regular(radius: float, count: int, start: float) -> np.ndarray:
    """Vertices of a regular polygon, (count, 2), starting at angle `start` (radians)."""
    angles = start + np.arange(count) * (2.0 * math.pi / count)
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    """Rotate (K, 2) points about the origin by `angle` radians (clockwise on screen, y down)."""
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def shape_outline(kind: str, extent: float, angle: float) -> Outline:
    """Outline of a `kind` shape whose nominal size is `extent` pixels, rotated by `angle` rad."""
    r = extent / 2.0
    up = -math.pi / 2.0  # y points down, so -90 degrees is straight up
    match kind:
        case "circle":
            return Outline((_regular(r, _CIRCLE_VERTICES, 0.0),), (255,))
        case "ring":
            outer = _regular(r, _CIRCLE_VERTICES, 0.0)
            inner = _regular(r * _RING_INNER, _CIRCLE_VERTICES, 0.0)
            return Outline((outer, inner), (255, 0))
        case "square":
            # a square of side 0.85 * extent reads as the same size as a circle of that diameter
            half = 0.425 * extent
            square = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
            return Outline((_rotate(square, angle),), (255,))
        case "triangle":
            # equilateral, circumradius 0.6 * extent; shifted so its box is centred
            tri = _regular(0.6 * extent, 3, up) + np.array([0.0, 0.15 * extent])
            return Outline((_rotate(tri, angle),), (255,))
        case "star":
            tip = 0.55 * extent
            points = np.empty((10, 2))
            points[0::2] = _regular(tip, 5, up)
            points[1::2] = _regular(tip * _STAR_INNER, 5, up + math.pi / 5.0)
            # centre the box vertically: tips span -tip .. tip * cos(36 deg)
            points[:, 1] += 0.5 * tip * (1.0 - math.cos(math.pi / 5.0))
            return Outline((_rotate(points, angle),), (255,))
        case _:
            raise ValueError(
                f"unknown shape kind {kind!r}; use one of circle, square, triangle, star, ring"
            )


@dataclass(frozen=True)
class Coverage:
    """Antialiased coverage of one object inside a crop of the output image."""

    alpha: np.ndarray  # (h, w) float32 in [0, 1]
    top: int  # crop row offset in the output image
    left: int  # crop column offset in the output image
    box: tuple[float, float, float, float]  # tight (x0, y0, x1, y1) of the drawn pixels


def rasterise(
    outline: Outline, centre: tuple[float, float], resolution: int, supersample: int
) -> Coverage:
    """Draw `outline` at `centre` with Pillow at `supersample`x and box-filter it to coverage."""
    ex0, ey0, ex1, ey1 = outline.extent()
    cx, cy = centre
    # crop around the shape with a one-pixel margin, clipped to the image
    left = max(0, math.floor(cx + ex0) - 1)
    top = max(0, math.floor(cy + ey0) - 1)
    right = min(resolution, math.ceil(cx + ex1) + 1)
    bottom = min(resolution, math.ceil(cy + ey1) + 1)
    w, h = right - left, bottom - top
    s = supersample
    canvas = Image.new("L", (w * s, h * s), 0)
    draw = ImageDraw.Draw(canvas)
    offset = np.array([cx - left, cy - top])
    for polygon, fill in zip(outline.polygons, outline.fills, strict=True):
        # continuous coordinate u covers sub-pixel floor(u); Pillow addresses pixel centres
        points = (polygon + offset) * s - 0.5
        draw.polygon([(float(x), float(y)) for x, y in points], fill=fill)
    drawn = np.asarray(canvas)  # (h * s, w * s) uint8, 0 or 255
    cols = np.flatnonzero(drawn.any(axis=0))
    rows = np.flatnonzero(drawn.any(axis=1))
    if cols.size == 0:
        raise RuntimeError("shape rasterised to no pixels; it is too small for this resolution")
    box = (
        float(left + cols[0] / s),
        float(top + rows[0] / s),
        float(left + (cols[-1] + 1) / s),
        float(top + (rows[-1] + 1) / s),
    )
    summed = drawn.reshape(h, s, w, s).sum(axis=(1, 3), dtype=np.uint32)
    alpha = summed.astype(np.float32) * np.float32(1.0 / (255 * s * s))
    return Coverage(alpha, top, left, box)


def _muted_color(rng: np.random.Generator) -> np.ndarray:
    """A grey or faintly tinted RGB colour (float32, 0..255) that no object colour resembles."""
    hue = rng.random()
    saturation = rng.uniform(0.0, _BACKGROUND_SATURATION)
    value = rng.uniform(*_BACKGROUND_VALUE)
    return np.array(colorsys.hsv_to_rgb(hue, saturation, value), dtype=np.float32) * 255.0


def _second_tone(base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A second muted colour near `base` (low contrast) for gradients and textures."""
    other = _muted_color(rng)
    shift = rng.uniform(0.4, 0.8)  # move a bounded fraction of the way, keeping contrast low
    return base + (other - base) * np.float32(shift)


def _value_noise(resolution: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth noise in [0, 1], (H, W) float32: a coarse random grid upsampled bicubically."""
    cells = int(rng.integers(3, 8))
    grid = rng.random((cells, cells), dtype=np.float32)
    field = Image.fromarray(grid).resize((resolution, resolution), Image.Resampling.BICUBIC)
    smooth = np.asarray(field, dtype=np.float32)
    low, high = float(smooth.min()), float(smooth.max())
    return (smooth - low) / max(high - low, 1e-6)


def make_background(kind: str, resolution: int, rng: np.random.Generator) -> np.ndarray:
    """A low-contrast muted background (H, W, 3) float32 in 0..255 of the given `kind`."""
    base = _muted_color(rng)
    match kind:
        case "plain":
            return np.broadcast_to(base, (resolution, resolution, 3)).copy()
        case "gradient":
            other = _second_tone(base, rng)
            theta = rng.uniform(0.0, 2.0 * math.pi)
            ramp = (np.arange(resolution, dtype=np.float32) + 0.5) / resolution
            t = math.cos(theta) * ramp[None, :] + math.sin(theta) * ramp[:, None]  # (H, W)
            t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
            return base + (other - base) * t[..., None]
        case "noise":
            other = _second_tone(base, rng)
            t = _value_noise(resolution, rng)
            grain = rng.standard_normal((resolution, resolution), dtype=np.float32)
            grain *= np.float32(rng.uniform(1.5, 4.0))  # fine texture, a few grey levels
            return base + (other - base) * t[..., None] + grain[..., None]
        case _:
            raise ValueError(
                f"unknown background {kind!r}; use one of {', '.join(BACKGROUND_KINDS)}"
            )
