"""Class adherence of a class-conditional LDM: sample each class, ask the evaluator what it drew."""

import time
from typing import Any

import torch

from ldmkit.metrics.class_evaluator import ClassEvaluator
from ldmkit.pipeline import LatentDiffusion
from ldmkit.progress import progress


@torch.no_grad()
def sample_classes(
    model: LatentDiffusion,
    labels: torch.Tensor,
    guidance: float = 3.0,
    sampler: str = "ddim",
    steps: int = 50,
    seed: int = 0,
    batch_size: int = 30,
) -> torch.Tensor:
    """Images (N, 3, H, W) in [-1, 1] for `labels` (N,); image i uses noise seed `seed + i`.

    Batches only group the work: each image's noise comes from its own generator, so the result
    does not depend on `batch_size`.
    """
    if not model.config.num_classes:
        raise ValueError("this needs a class-conditional model (num_classes > 0)")
    chunks = []
    for start in progress(range(0, len(labels), batch_size), "sampling classes"):
        y = labels[start : start + batch_size]
        chunks.append(model.sample(len(y), y, guidance, sampler, steps, seed=seed + start).cpu())
    return torch.cat(chunks)


@torch.no_grad()
def score_adherence(
    evaluator: ClassEvaluator, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 250
) -> dict[str, float]:
    """The evaluator's agreement with the asked-for `labels`, averaged over all images."""
    device = next(evaluator.parameters()).device
    totals: dict[str, float] = {}
    for start in range(0, len(labels), batch_size):
        y = labels[start : start + batch_size]
        part = evaluator.adherence(images[start : start + batch_size].to(device), y.to(device))
        for key, value in part.items():
            totals[key] = totals.get(key, 0.0) + value * len(y) / len(labels)
    return totals


def check_label_spaces(model: LatentDiffusion, evaluator: ClassEvaluator) -> None:
    """The model's classes must be the evaluator's, or the scores mean nothing."""
    classes = model.config.num_classes
    if classes == 0:
        raise ValueError("adherence needs a class-conditional model (num_classes > 0)")
    if classes != evaluator.config.num_classes:
        raise ValueError(
            f"the model has {classes} classes but the evaluator knows "
            f"{evaluator.config.num_classes}; use an evaluator trained on the same label space"
        )


def evaluate_adherence(
    model: LatentDiffusion,
    evaluator: ClassEvaluator,
    n: int,
    guidance: float = 3.0,
    sampler: str = "ddim",
    steps: int = 50,
    seed: int = 0,
    batch_size: int = 30,
) -> dict[str, Any]:
    """Generate `n` images cycling through the classes; report the evaluator's accuracies."""
    check_label_spaces(model, evaluator)
    labels = torch.arange(n) % model.config.num_classes
    started = time.perf_counter()
    images = sample_classes(model, labels, guidance, sampler, steps, seed, batch_size)
    seconds = time.perf_counter() - started
    return {
        "n": n,
        "guidance": guidance,
        "sampler": sampler,
        "steps": steps,
        **score_adherence(evaluator, images, labels),
        "seconds_per_image": seconds / n,
    }
