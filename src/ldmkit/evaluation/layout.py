"""Layout-to-image on `shapes`: the fraction of requested objects found at their boxes.

A requested object (class = kind * 6 + colour, box) is looked for among the connected regions of
its colour (the colour classes of `semantic.colour_classes`: shapes' objects are saturated named
colours over unsaturated backgrounds). The region whose bounding box overlaps the requested box
most is the detection; the object is found when that IoU is >= 0.5, and found with its kind when
the shapes evaluator, shown the detection's crop, also names the requested kind. The same
detector on the real images with their true layouts gives its ceiling.
"""

from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ldmkit.conditioning import Layout
from ldmkit.data.shapes import COLOR_NAMES
from ldmkit.evaluation.batched import (
    EVALUATION_OPTIONS,
    first_items,
    options_record,
    sample_batches,
    save_rows,
)
from ldmkit.evaluation.semantic import colour_classes
from ldmkit.metrics.class_evaluator import ClassEvaluator
from ldmkit.pipeline import LatentDiffusion
from ldmkit.samplers import SamplingOptions

IOU_THRESHOLD = 0.5
PixelBox = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def region_boxes(mask: np.ndarray) -> list[PixelBox]:
    """Bounding boxes of the 8-connected regions of a boolean (H, W) mask."""
    seen = np.zeros_like(mask, dtype=bool)
    h, w = mask.shape
    boxes = []
    for y, x in zip(*np.nonzero(mask), strict=True):
        if seen[y, x]:
            continue
        seen[y, x] = True
        queue = deque([(int(y), int(x))])
        y0, x0, y1, x1 = y, x, y, x
        while queue:
            cy, cx = queue.popleft()
            y0, y1, x0, x1 = min(y0, cy), max(y1, cy), min(x0, cx), max(x1, cx)
            for ny in (cy - 1, cy, cy + 1):
                for nx in (cx - 1, cx, cx + 1):
                    if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        queue.append((ny, nx))
        boxes.append((int(x0), int(y0), int(x1) + 1, int(y1) + 1))
    return boxes


CROP_SCALE = 5.0  # crop side / object side: the crop shows the object at a shapes size


def object_crop(
    image: torch.Tensor, colour_map: np.ndarray, colour: int, box: PixelBox, size: int
) -> torch.Tensor:
    """What the evaluator is shown for one detected object: the image (3, H, W) with every other
    object colour painted over in the mean background colour (so one object remains, as in the
    evaluator's training images), cropped to a square CROP_SCALE times the box's longer side
    around the box (edge-padded where it leaves the image) and resized to size x size.
    Measured on 300 real objects: 96.7% of kinds named right, against 52% for a crop twice the
    box without the painting over."""
    others = torch.from_numpy((colour_map > 0) & (colour_map != 1 + colour))
    background = torch.from_numpy(colour_map == 0)
    if others.any() and background.any():
        image = image.clone()
        image[:, others] = image[:, background].mean(1, keepdim=True)
    x0, y0, x1, y1 = box
    half = max(1, round(max(x1 - x0, y1 - y0) * CROP_SCALE / 2))
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    padded = F.pad(image[None], (half, half, half, half), mode="replicate")
    # The window [c - half, c + half) of the image is [c, c + 2 half) of the padded one.
    crop = padded[:, :, cy : cy + 2 * half, cx : cx + 2 * half]
    return F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)[0]


@torch.no_grad()
def find_objects(
    images: torch.Tensor, layouts: list[Layout], evaluator: ClassEvaluator | None = None
) -> dict[str, Any]:
    """Look for every requested (class, box) in its image (B, 3, H, W) in [-1, 1]; per object:
    the best IoU of a region of its colour, and (with `evaluator`) whether its crop shows the
    requested kind. Returns the fractions found and the per-object records."""
    colours = colour_classes(images).numpy()
    h, w = images.shape[-2:]
    records = []
    crops, wanted_kinds = [], []
    for image, colour_map, layout in zip(images, colours, layouts, strict=True):
        regions: dict[int, list[PixelBox]] = {}
        for class_id, (x0, y0, x1, y1) in layout:
            colour = class_id % len(COLOR_NAMES)
            if colour not in regions:
                regions[colour] = region_boxes(colour_map == 1 + colour)
            wanted = (x0 * w, y0 * h, x1 * w, y1 * h)
            scored = [(box_iou(wanted, box), box) for box in regions[colour]]
            iou, box = max(scored, default=(0.0, None))
            records.append({"class": class_id, "iou": iou})
            if evaluator is not None and box is not None and iou >= IOU_THRESHOLD:
                size = evaluator.config.resolution
                crops.append(object_crop(image, colour_map, colour, box, size))
                wanted_kinds.append(class_id // len(COLOR_NAMES))
                records[-1]["crop"] = len(crops) - 1
    found = [r["iou"] >= IOU_THRESHOLD for r in records]
    result: dict[str, Any] = {
        "objects": len(records),
        "found": sum(found) / max(1, len(records)),
        "mean_iou": float(np.mean([r["iou"] for r in records])) if records else 0.0,
    }
    if evaluator is not None:
        device = next(evaluator.parameters()).device
        kinds = []
        for start in range(0, len(crops), 256):
            batch = torch.stack(crops[start : start + 256]).to(device)
            kinds.append(evaluator(batch)[0].argmax(1).cpu())
        predicted = torch.cat(kinds).tolist() if kinds else []
        right = ["crop" in r and predicted[r["crop"]] == wanted_kinds[r["crop"]] for r in records]
        result["found_with_kind"] = sum(right) / max(1, len(records))
    result["records"] = records
    return result


@torch.no_grad()
def evaluate_layout(
    model: LatentDiffusion,
    dataset: Dataset[dict[str, Any]],
    n: int,
    evaluator: ClassEvaluator | None = None,
    options: SamplingOptions = EVALUATION_OPTIONS,
    batch_size: int = 32,
    grid: Path | None = None,
) -> dict[str, Any]:
    """Generate one image per held-out layout (the first `n` shapes items' boxes) and count the
    requested objects found at their boxes; the real images give the detector's ceiling."""
    if not model.takes_layouts:
        raise ValueError("this needs a layout-conditional model (a layout conditioner)")
    batch = first_items(dataset, n)
    if "layout" not in batch:
        raise ValueError("layout-to-image is measured on shapes data (it carries the layouts)")
    layouts, real = batch["layout"], batch["image"]
    n = len(layouts)
    options = model.resolve(options)
    out, elapsed = sample_batches(model, n, options, batch_size, "layout-to-image", layouts=layouts)
    generated = find_objects(out, layouts, evaluator)
    ceiling = find_objects(real, layouts, evaluator)
    if grid is not None:
        from ldmkit.images import draw_layouts

        save_rows(grid, [draw_layouts(out[:8], layouts[:8]), draw_layouts(real[:8], layouts[:8])])
    generated.pop("records")
    ceiling.pop("records")
    return {
        "task": "layout-to-image",
        "n": n,
        **options_record(options),
        "ldm": generated,
        "real_images": ceiling,
        "images_per_s": n / elapsed,
    }
