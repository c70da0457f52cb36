"""The layout detector: colour regions, IoU, and how many real shapes objects it finds."""

import numpy as np
import torch

from ldmkit.assets import SHAPES_EVALUATOR
from ldmkit.checkpoint import load_evaluator
from ldmkit.data.collate import collate
from ldmkit.data.shapes import ShapesConfig, ShapesDataset
from ldmkit.evaluation.layout import box_iou, find_objects, region_boxes


def test_box_iou() -> None:
    assert box_iou((0, 0, 2, 2), (0, 0, 2, 2)) == 1.0
    assert box_iou((0, 0, 2, 2), (1, 0, 3, 2)) == 2 / 6
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0


def test_region_boxes_are_8_connected_components() -> None:
    mask = np.zeros((6, 6), dtype=bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal neighbours: one region
    mask[3:5, 2:6] = True
    assert sorted(region_boxes(mask)) == [(0, 0, 2, 2), (2, 3, 6, 5)]
    assert region_boxes(np.zeros((3, 3), dtype=bool)) == []


def test_real_shapes_are_found_at_their_boxes_and_moved_boxes_are_not() -> None:
    data = ShapesDataset(ShapesConfig(resolution=64), size=40, seed=1)
    batch = collate([data[i] for i in range(40)])
    evaluator = load_evaluator(SHAPES_EVALUATOR)
    real = find_objects(batch["image"], batch["layout"], evaluator)
    assert real["objects"] >= 60
    assert real["found"] >= 0.95 and real["found_with_kind"] >= 0.85
    # The same layouts against other images: few objects of the right colour at the right box.
    shuffled = find_objects(torch.roll(batch["image"], 1, 0), batch["layout"], evaluator)
    assert shuffled["found"] <= 0.25
