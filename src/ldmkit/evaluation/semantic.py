"""Semantic synthesis on `shapes`: how well a generated image's objects agree, pixel by pixel,
with the map it was asked for. Shapes' objects are saturated named colours over backgrounds of
HSV saturation <= 0.12, so a pixel's colour class (background or one of the six) is read off the
image directly; the map gives the expected colour class of every pixel."""

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ldmkit.conditioning import colourise
from ldmkit.data.shapes import COLOR_NAMES, COLORS
from ldmkit.evaluation.batched import (
    SPATIAL_OPTIONS,
    first_items,
    options_record,
    save_rows,
    timed_batches,
)
from ldmkit.pipeline import LatentDiffusion
from ldmkit.samplers import SamplingOptions

# A pixel counts as an object colour above this HSV saturation (backgrounds stay <= 0.12,
# object colours are >= 0.85; antialiased edges fall in between).
SATURATION_THRESHOLD = 0.4
NUM_COLOUR_CLASSES = 1 + len(COLOR_NAMES)  # background + six colours


def colour_classes(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W) long: 0 background, 1 + index of the nearest named
    colour where the pixel is saturated."""
    rgb = (images.float().clamp(-1, 1) + 1) * 127.5
    high, low = rgb.max(1).values, rgb.min(1).values
    saturation = (high - low) / high.clamp(min=1.0)
    palette = torch.tensor([COLORS[name] for name in COLOR_NAMES], dtype=torch.float32)
    distance = (rgb[:, None] - palette.to(rgb.device)[None, :, :, None, None]).square().sum(2)
    nearest = distance.argmin(1) + 1
    return torch.where(saturation > SATURATION_THRESHOLD, nearest, torch.zeros_like(nearest))


def map_colour_classes(semantic: torch.Tensor) -> torch.Tensor:
    """Shapes map ids (0 background, 1 + kind * 6 + colour) -> 0 / 1 + colour index."""
    ids = semantic.long()
    return torch.where(ids > 0, (ids - 1) % len(COLOR_NAMES) + 1, torch.zeros_like(ids))


def agreement(predicted: torch.Tensor, expected: torch.Tensor) -> dict[str, float]:
    """Pixel accuracy, accuracy on object pixels, and mean IoU over the colour classes present."""
    correct = predicted == expected
    objects = expected > 0
    ious = []
    for c in range(NUM_COLOUR_CLASSES):
        union = ((predicted == c) | (expected == c)).sum()
        if union > 0:
            ious.append(float(((predicted == c) & (expected == c)).sum() / union))
    return {
        "pixel_accuracy": float(correct.float().mean()),
        "object_pixel_accuracy": float(correct[objects].float().mean()) if objects.any() else 1.0,
        "mean_iou": sum(ious) / len(ious),
    }


@torch.no_grad()
def evaluate_semantic_synthesis(
    model: LatentDiffusion,
    dataset: Dataset[dict[str, Any]],
    n: int,
    options: SamplingOptions = SPATIAL_OPTIONS,
    batch_size: int = 32,
    grid: Path | None = None,
) -> dict[str, Any]:
    """Generate one image per held-out map (the first `n` shapes items) and score its colour
    classes against the map; the same score of the real images is the ceiling (antialiased
    edges and the threshold cost it a little)."""
    spatial = model.spatial
    if spatial is None or spatial.kind != "semantic":
        raise ValueError("this needs a semantic synthesis model (spatial.kind = 'semantic')")
    batch = first_items(dataset, n)
    if "semantic" not in batch:
        raise ValueError("semantic synthesis is measured on shapes data (it carries the maps)")
    maps, images = batch["semantic"], batch["image"]
    n = len(maps)
    device = model.device
    options = model.resolve(options)

    def generate(part: slice, start: int) -> torch.Tensor:
        condition = model.spatial_condition(semantic=maps[part].to(device))
        batch_options = options.replace(seed=options.seed + start)
        return model.sample(len(condition), condition=condition, options=batch_options)

    out, elapsed = timed_batches(n, batch_size, "semantic synthesis", generate)
    expected = map_colour_classes(maps)
    if grid is not None:
        save_rows(grid, [colourise(maps[:8], spatial.classes), out, images])
    return {
        "task": "semantic synthesis",
        "n": n,
        **options_record(options),
        "ldm": agreement(colour_classes(out), expected),
        "real_images": agreement(colour_classes(images), expected),
        "images_per_s": n / elapsed,
    }
