"""Two-object relation scoring: held-out two-object captions, and the real images that fit them."""

import torch

from ldmkit.assets import SHAPES_EVALUATOR
from ldmkit.checkpoint import load_evaluator
from ldmkit.data.shapes import ShapesConfig, ShapesDataset
from ldmkit.evaluation.relations import score_relations, two_object_prompts


def test_real_two_object_scenes_score_high_and_swapped_relations_low() -> None:
    data = ShapesDataset(ShapesConfig(resolution=64), size=400, seed=7)
    prompts, wanted, indices = two_object_prompts(data, 40)
    assert len(prompts) == 40 and all(
        data[i]["caption"] == p for i, p in zip(indices, prompts, strict=True)
    )
    assert all(a % 6 != b % 6 for a, b, _ in wanted)  # colours differ
    real = torch.stack([data[i]["image"] for i in indices])
    evaluator = load_evaluator(SHAPES_EVALUATOR)
    scores = score_relations(real, wanted, evaluator)
    assert scores["both_colours"] >= 0.95 and scores["relation"] >= 0.9
    assert scores["both_objects"] >= 0.7 and scores["all"] <= scores["both_objects"]
    opposite = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
    swapped = [(a, b, opposite[r]) for a, b, r in wanted]
    assert score_relations(real, swapped, evaluator)["relation"] <= 0.1
