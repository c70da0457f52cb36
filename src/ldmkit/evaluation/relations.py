"""Two-object text prompts on `shapes`: are both objects drawn, and in the asked relation?

The prompts are the captions of held-out two-object scenes whose objects differ in colour
("a small red circle above a large blue square"). In each image, every object is the largest
region of its colour (as in `layout.py`); it counts as drawn when the shapes evaluator, shown
that region's crop, names its kind. The relation of the two regions' box centres (the dominant
axis, as the captions are written) must be the caption's. The real images give the ceiling.
"""

import time
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ldmkit.data.shapes import COLOR_NAMES
from ldmkit.evaluation.batched import EVALUATION_OPTIONS, options_record
from ldmkit.evaluation.generate import sample_prompts
from ldmkit.evaluation.layout import PixelBox, object_crop, region_boxes
from ldmkit.evaluation.semantic import colour_classes
from ldmkit.metrics.class_evaluator import ClassEvaluator
from ldmkit.pipeline import LatentDiffusion
from ldmkit.samplers import SamplingOptions

RELATIONS = ("left of", "right of", "above", "below")


def two_object_prompts(
    dataset: Dataset[dict[str, Any]], n: int
) -> tuple[list[str], list[tuple[int, int, str]], list[int]]:
    """The first `n` held-out captions of exactly two objects of different colours, the
    (first class, second class, relation) each one asks for, and their dataset indices."""
    prompts, wanted, indices = [], [], []
    for index in range(len(dataset)):  # type: ignore[arg-type]
        item = dataset[index]
        layout = item.get("layout")
        if layout is None:
            raise ValueError("two-object prompts come from shapes data (it carries layouts)")
        if len(layout) != 2:
            continue
        (a, _), (b, _) = layout
        if a % len(COLOR_NAMES) == b % len(COLOR_NAMES):
            continue
        caption = item["caption"]
        relation = next(r for r in RELATIONS if f" {r} " in caption)
        prompts.append(caption)
        wanted.append((a, b, relation))
        indices.append(index)
        if len(prompts) == n:
            break
    if len(prompts) < n:
        raise ValueError(f"only {len(prompts)} two-object scenes in the data; pass a larger one")
    return prompts, wanted, indices


def _relation(a: PixelBox, b: PixelBox) -> str:
    """Where box a lies relative to box b (the captions' rule: the larger centre offset)."""
    dx = (a[0] + a[2] - b[0] - b[2]) / 2
    dy = (a[1] + a[3] - b[1] - b[3]) / 2
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


@torch.no_grad()
def score_relations(
    images: torch.Tensor, wanted: list[tuple[int, int, str]], evaluator: ClassEvaluator
) -> dict[str, float]:
    """Fractions of images (B, 3, H, W) in [-1, 1] with both colours present, both objects
    right (colour and kind), the relation right (when both colours are present), and all of it."""
    colours = colour_classes(images).numpy()
    device = next(evaluator.parameters()).device
    both_colours = both_objects = relation_right = all_right = 0
    for image, colour_map, (a, b, relation) in zip(images, colours, wanted, strict=True):
        boxes = []
        for class_id in (a, b):
            regions = region_boxes(colour_map == 1 + class_id % len(COLOR_NAMES))
            area = [(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in regions]
            boxes.append(regions[int(np.argmax(area))] if regions else None)
        if boxes[0] is None or boxes[1] is None:
            continue
        both_colours += 1
        size = evaluator.config.resolution
        crops = torch.stack(
            [
                object_crop(image, colour_map, class_id % len(COLOR_NAMES), box, size)
                for class_id, box in zip((a, b), boxes, strict=True)
            ]
        )
        kinds = evaluator(crops.to(device))[0].argmax(1).tolist()
        objects = kinds == [a // len(COLOR_NAMES), b // len(COLOR_NAMES)]
        placed = _relation(boxes[0], boxes[1]) == relation
        both_objects += objects
        relation_right += placed
        all_right += objects and placed
    n = max(1, len(wanted))
    return {
        "both_colours": both_colours / n,
        "both_objects": both_objects / n,
        "relation": relation_right / n,
        "all": all_right / n,
    }


def evaluate_relations(
    model: LatentDiffusion,
    evaluator: ClassEvaluator,
    dataset: Dataset[dict[str, Any]],
    n: int,
    options: SamplingOptions = EVALUATION_OPTIONS,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Sample the first `n` two-object held-out captions and score them; the real images of
    those captions give the ceiling."""
    if not model.takes_prompts:
        raise ValueError("this needs a text-conditional model")
    prompts, wanted, indices = two_object_prompts(dataset, n)
    options = model.resolve(options)
    started = time.perf_counter()
    images = sample_prompts(model, prompts, options, batch_size)
    seconds = time.perf_counter() - started
    real = torch.stack([dataset[i]["image"] for i in indices])
    return {
        "n": n,
        **options_record(options),
        "ldm": score_relations(images, wanted, evaluator),
        "real_images": score_relations(real, wanted, evaluator),
        "seconds_per_image": seconds / n,
        "prompts": prompts[:8],
    }
