"""Class adherence of a class-conditional LDM: sample each class, ask the evaluator what it drew."""

import time
from typing import Any

import torch

from ldmkit.metrics.shape_classifier import ShapeClassifier
from ldmkit.pipeline import LatentDiffusion
from ldmkit.progress import progress


@torch.no_grad()
def evaluate_adherence(
    model: LatentDiffusion,
    evaluator: ShapeClassifier,
    n: int,
    guidance: float = 3.0,
    sampler: str = "ddim",
    steps: int = 50,
    seed: int = 0,
    batch_size: int = 30,
) -> dict[str, Any]:
    """Generate `n` images cycling through the classes; report kind/colour/both accuracy."""
    classes = model.config.num_classes
    if classes == 0:
        raise ValueError("adherence needs a class-conditional model (num_classes > 0)")
    if classes != evaluator.config.num_classes:
        raise ValueError(
            f"the model has {classes} classes but the evaluator knows "
            f"{evaluator.config.num_classes}; use an evaluator trained on the same label space"
        )
    device = next(evaluator.parameters()).device
    labels = torch.arange(n) % classes
    totals = {"kind": 0.0, "color": 0.0, "both": 0.0}
    started = time.perf_counter()
    for start in progress(range(0, n, batch_size), "sampling for adherence"):
        y = labels[start : start + batch_size]
        images = model.sample(len(y), y, guidance, sampler, steps, seed=seed + start)
        scores = evaluator.adherence(images.to(device), y.to(device))
        for key in totals:
            totals[key] += scores[key] * len(y) / n
    seconds = time.perf_counter() - started
    return {
        "n": n,
        "guidance": guidance,
        "sampler": sampler,
        "steps": steps,
        **totals,
        "seconds_per_image": seconds / n,
    }
