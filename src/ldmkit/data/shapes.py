"""Procedural `shapes` dataset: coloured shapes with captions, labels, boxes and masks.

Every sample is a pure function of (config, seed, index), so the dataset needs no files and has
any size. One render produces the image and all of its ground truth (caption, class label, layout
boxes, semantic map, instance masks), so they cannot disagree. By convention the training split
uses `TRAIN_SEED` and held-out data uses `HELDOUT_SEED`; any other seed is another split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ldmkit.data.shapes_render import (
    BACKGROUND_KINDS,
    BackgroundKind,
    Outline,
    make_background,
    rasterise,
    shape_outline,
)

SHAPE_KINDS: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring")
COLOR_NAMES: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange")
# Saturated, well-separated hues; backgrounds stay below HSV saturation 0.12 (shapes_render.py).
COLORS: Mapping[str, tuple[int, int, int]] = MappingProxyType(
    {
        "red": (220, 30, 30),
        "green": (30, 160, 50),
        "blue": (35, 75, 215),
        "yellow": (240, 205, 20),
        "purple": (135, 45, 185),
        "orange": (245, 125, 15),
    }
)
SIZES: tuple[str, ...] = ("small", "medium", "large")
# Nominal object extent as a fraction of the resolution; jitter keeps the three sizes disjoint.
SIZE_EXTENTS: Mapping[str, float] = MappingProxyType({"small": 0.18, "medium": 0.27, "large": 0.38})
SIZE_JITTER = 0.015
MAX_ROTATION_DEGREES = 15.0  # squares, triangles and stars stay upright enough to name
MAX_OVERLAP = 0.1  # box intersection / smaller box area allowed between two objects
MARGIN = 1.0 / 64.0  # free border around objects, as a fraction of the resolution
PLACEMENT_TRIES = 40  # random positions tried per size before stepping down a size
NUM_CLASSES = len(SHAPE_KINDS) * len(COLOR_NAMES)  # 30: class_id = kind_index * 6 + colour_index
TRAIN_SEED = 0
HELDOUT_SEED = 1
MAX_OBJECTS = 4

Box = tuple[float, float, float, float]


def class_id_of(kind: str, color: str) -> int:
    """Class id of a (kind, colour) pair: kind_index * 6 + colour_index."""
    if kind not in SHAPE_KINDS:
        raise ValueError(f"unknown shape kind {kind!r}; use one of {', '.join(SHAPE_KINDS)}")
    if color not in COLOR_NAMES:
        raise ValueError(f"unknown colour {color!r}; use one of {', '.join(COLOR_NAMES)}")
    return SHAPE_KINDS.index(kind) * len(COLOR_NAMES) + COLOR_NAMES.index(color)


def class_name(class_id: int) -> str:
    """Human-readable name of a class id, e.g. 0 -> "red circle"."""
    valid = isinstance(class_id, int | np.integer) and not isinstance(class_id, bool)
    if not valid or not 0 <= class_id < NUM_CLASSES:
        raise ValueError(f"class_id must be an int in [0, {NUM_CLASSES - 1}], got {class_id!r}")
    kind_index, color_index = divmod(int(class_id), len(COLOR_NAMES))
    return f"{COLOR_NAMES[color_index]} {SHAPE_KINDS[kind_index]}"


def _check_int(name: str, value: object, low: int, high: int) -> None:
    """Raise ValueError unless `value` is an int in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"ShapesConfig.{name} must be an int in [{low}, {high}], got {value!r}")


@dataclass(frozen=True)
class ShapesConfig:
    """What the shapes generator draws; validated on construction."""

    resolution: int = 64
    min_objects: int = 1
    max_objects: int = 4
    single_object: bool = False  # exactly one object per image, and the sample carries a label
    backgrounds: tuple[BackgroundKind, ...] = BACKGROUND_KINDS
    supersample: int = 4  # antialiasing: draw at this many times the resolution, then average

    def __post_init__(self) -> None:
        _check_int("resolution", self.resolution, 32, 512)
        _check_int("min_objects", self.min_objects, 1, MAX_OBJECTS)
        _check_int("max_objects", self.max_objects, self.min_objects, MAX_OBJECTS)
        _check_int("supersample", self.supersample, 1, 8)
        if not isinstance(self.single_object, bool):
            raise ValueError(
                f"ShapesConfig.single_object must be True or False, got {self.single_object!r}"
            )
        backgrounds = self.backgrounds
        if isinstance(backgrounds, str) or not isinstance(backgrounds, Sequence):
            raise ValueError(
                "ShapesConfig.backgrounds must be a tuple of background names from "
                f"{BACKGROUND_KINDS}, got {backgrounds!r}"
            )
        unknown = [b for b in backgrounds if b not in BACKGROUND_KINDS]
        if not backgrounds or unknown or len(set(backgrounds)) != len(backgrounds):
            raise ValueError(
                "ShapesConfig.backgrounds must be a non-empty tuple of distinct names from "
                f"{BACKGROUND_KINDS}, got {backgrounds!r}"
            )
        object.__setattr__(self, "backgrounds", tuple(backgrounds))


@dataclass(frozen=True)
class ShapeObject:
    """One drawn object: its words, its class and its tight pixel box (x0, y0, x1, y1)."""

    kind: str
    color: str
    size: str
    class_id: int
    box: Box

    @property
    def phrase(self) -> str:
        """Caption phrase such as "a small red circle"."""
        return f"a {self.size} {self.color} {self.kind}"

    @property
    def centre(self) -> tuple[float, float]:
        """Centre (x, y) of the box in pixels."""
        return (self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0


@dataclass(frozen=True, eq=False)
class ShapesSample:
    """An image and all of its ground truth, produced by one render."""

    image: np.ndarray  # (H, W, 3) uint8
    objects: list[ShapeObject]  # in painter's order: later objects are drawn on top
    label: int | None  # the class_id in single-object mode, else None
    caption: str
    semantic: np.ndarray  # (H, W) int64: 0 = background, 1 + class_id where an object shows
    instance_masks: np.ndarray = field(repr=False)  # (N, H, W) bool: full coverage, alpha >= 0.5
    background: BackgroundKind = "plain"  # which kind of background was drawn

    def tensor(self) -> torch.Tensor:
        """The image as (3, H, W) float32 in [-1, 1], as the training items carry it."""
        return torch.from_numpy(self.image).permute(2, 0, 1).float().div_(127.5).sub_(1.0)

    @property
    def layout(self) -> list[tuple[int, Box]]:
        """(class_id, box normalised to [0, 1]) per object, in painter's order."""
        height, width = self.image.shape[:2]
        return [
            (o.class_id, (o.box[0] / width, o.box[1] / height, o.box[2] / width, o.box[3] / height))
            for o in self.objects
        ]


def relation(a: ShapeObject, b: ShapeObject) -> str:
    """Where `a` is relative to `b`, by the dominant axis of their centre offset."""
    (ax, ay), (bx, by) = a.centre, b.centre
    dx, dy = ax - bx, ay - by
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"  # image rows grow downwards


def caption_of(objects: Sequence[ShapeObject]) -> str:
    """English caption naming every object and relating each one to the next."""
    if not objects:
        raise ValueError("a caption needs at least one object")
    parts = [objects[0].phrase]
    for i in range(1, len(objects)):
        joiner = " " if i == 1 else ", which is "
        parts.append(f"{joiner}{relation(objects[i - 1], objects[i])} {objects[i].phrase}")
    return "".join(parts)


def _overlap(a: Box, b: Box) -> float:
    """Intersection area of two boxes over the smaller box's area."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0.0 or h <= 0.0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / smaller


def _place(
    kind: str, size_index: int, placed: list[Box], resolution: int, rng: np.random.Generator
) -> tuple[int, Outline, tuple[float, float]]:
    """Find a size (stepping down from `size_index`) and centre that overlaps others little."""
    angle = 0.0
    if kind in ("square", "triangle", "star"):
        angle = math.radians(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES))
    jitter = rng.uniform(-SIZE_JITTER, SIZE_JITTER)
    for index in range(size_index, -1, -1):
        outline = shape_outline(kind, (SIZE_EXTENTS[SIZES[index]] + jitter) * resolution, angle)
        x0, y0, x1, y1 = outline.extent()
        # keep the whole shape inside the image with a margin; all in units of the resolution,
        # so a scene's layout does not depend on the resolution it is drawn at
        margin = MARGIN * resolution
        low_x, high_x = margin - x0, resolution - margin - x1
        low_y, high_y = margin - y0, resolution - margin - y1
        for _ in range(PLACEMENT_TRIES):
            cx, cy = rng.uniform(low_x, high_x), rng.uniform(low_y, high_y)
            box = (cx + x0, cy + y0, cx + x1, cy + y1)
            if all(_overlap(box, other) <= MAX_OVERLAP for other in placed):
                placed.append(box)
                return index, outline, (cx, cy)
    raise RuntimeError(f"could not place {len(placed) + 1} objects; lower ShapesConfig.max_objects")


def _check_key(name: str, value: object) -> None:
    """Raise ValueError unless `value` is a non-negative int (seeds and indices)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


def render_shapes(config: ShapesConfig, seed: int, index: int) -> ShapesSample:
    """Render sample `index` of split `seed`; equal (config, seed, index) give equal samples."""
    _check_key("seed", seed)
    _check_key("index", index)
    # Two streams: the scene draws (counts, kinds, positions in units of the resolution) never
    # depend on how many texture numbers a resolution needs, so a scene looks the same at any size.
    scene_seq, texture_seq = np.random.SeedSequence([int(seed), int(index)]).spawn(2)
    rng = np.random.default_rng(scene_seq)
    res = config.resolution
    if config.single_object:
        count = 1
    else:
        count = int(rng.integers(config.min_objects, config.max_objects + 1))
    background = config.backgrounds[int(rng.integers(len(config.backgrounds)))]
    image = make_background(background, res, np.random.default_rng(texture_seq))  # (H, W, 3)
    semantic = np.zeros((res, res), dtype=np.int64)
    instance_masks = np.zeros((count, res, res), dtype=bool)
    objects: list[ShapeObject] = []
    placed: list[Box] = []
    for i in range(count):
        kind = SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
        color = COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
        size_index, outline, centre = _place(kind, int(rng.integers(len(SIZES))), placed, res, rng)
        coverage = rasterise(outline, centre, res, config.supersample)
        h, w = coverage.alpha.shape
        rows = slice(coverage.top, coverage.top + h)
        cols = slice(coverage.left, coverage.left + w)
        # "over" compositing with the antialiased coverage as alpha
        region = image[rows, cols]
        rgb = np.asarray(COLORS[color], dtype=np.float32)
        region += (rgb - region) * coverage.alpha[..., None]
        mask = coverage.alpha >= 0.5
        instance_masks[i, rows, cols] = mask
        class_id = class_id_of(kind, color)
        semantic[rows, cols][mask] = 1 + class_id  # later objects overwrite earlier ones
        objects.append(ShapeObject(kind, color, SIZES[size_index], class_id, coverage.box))
    pixels = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return ShapesSample(
        image=pixels,
        objects=objects,
        label=objects[0].class_id if config.single_object else None,
        caption=caption_of(objects),
        semantic=semantic,
        instance_masks=instance_masks,
        background=background,
    )


class ShapesDataset(Dataset[dict[str, Any]]):
    """`size` procedural samples of split `seed` (by convention TRAIN_SEED or HELDOUT_SEED)."""

    def __init__(self, config: ShapesConfig = ShapesConfig(), size: int = 10000, seed: int = 0):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"ShapesDataset size must be a positive int, got {size!r}")
        _check_key("seed", seed)
        self.config = config
        self.size = size
        self.seed = seed

    def __len__(self) -> int:
        """Number of samples in the split."""
        return self.size

    def sample(self, index: int) -> ShapesSample:
        """The full sample (image and ground truth) at `index`."""
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for a dataset of size {self.size}")
        return render_shapes(self.config, self.seed, int(index))

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Training item: image (3, H, W) float32 in [-1, 1], caption, label (-1 if none), index,
        the semantic map (H, W) uint8 (0 background, 1 + class id) and the layout (a list of
        (class id, box in fractions of the image))."""
        sample = self.sample(index)
        image = sample.tensor()
        label = -1 if sample.label is None else sample.label
        semantic = torch.from_numpy(sample.semantic.astype(np.uint8))
        return {
            "image": image,
            "caption": sample.caption,
            "label": label,
            "index": int(index),
            "semantic": semantic,
            "layout": sample.layout,
        }
