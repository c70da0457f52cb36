"""The shapes colour reader behind the semantic-synthesis score."""

import torch

from ldmkit.data.collate import collate
from ldmkit.data.shapes import ShapesConfig, ShapesDataset
from ldmkit.evaluation.semantic import agreement, colour_classes, map_colour_classes


def test_real_images_agree_with_their_maps_and_shuffled_ones_do_not() -> None:
    data = ShapesDataset(ShapesConfig(resolution=64), size=32, seed=1)
    batch = collate([data[i] for i in range(32)])
    expected = map_colour_classes(batch["semantic"])
    real = agreement(colour_classes(batch["image"]), expected)
    shuffled = agreement(colour_classes(batch["image"].roll(1, 0)), expected)
    assert real["pixel_accuracy"] > 0.98 and real["mean_iou"] > 0.9
    assert shuffled["object_pixel_accuracy"] < 0.2 < real["object_pixel_accuracy"]


def test_agreement_of_a_perfect_and_an_empty_prediction() -> None:
    expected = torch.zeros(1, 4, 4, dtype=torch.long)
    expected[0, :2] = 3
    assert agreement(expected, expected) == {
        "pixel_accuracy": 1.0,
        "object_pixel_accuracy": 1.0,
        "mean_iou": 1.0,
    }
    empty = agreement(torch.zeros_like(expected), expected)
    assert empty["object_pixel_accuracy"] == 0.0 and empty["pixel_accuracy"] == 0.5
