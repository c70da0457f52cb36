"""Generate the images an evaluation scores, and embed images in an evaluator's feature space."""

import time

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
def generate(
    model: LatentDiffusion,
    n: int,
    guidance: float = 3.0,
    sampler: str = "ddim",
    steps: int = 50,
    seed: int = 0,
    batch_size: int = 30,
) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """(images (n, 3, H, W) on the CPU, labels or None, seconds spent).

    Class-conditional models cycle through their classes with classifier-free guidance;
    unconditional ones ignore `guidance`. Image i draws its noise from seed + i.
    """
    started = time.perf_counter()
    labels = None
    if model.config.num_classes:
        labels = torch.arange(n) % model.config.num_classes
        images = sample_classes(model, labels, guidance, sampler, steps, seed, batch_size)
    else:
        chunks = [
            model.sample(min(batch_size, n - s), None, 1.0, sampler, steps, seed=seed + s).cpu()
            for s in progress(range(0, n, batch_size), "sampling")
        ]
        images = torch.cat(chunks)
    return images, labels, time.perf_counter() - started


@torch.no_grad()
def embed(evaluator: ClassEvaluator, images: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """The evaluator's penultimate features (N, D) of `images`, on the CPU."""
    device = next(evaluator.parameters()).device
    return torch.cat(
        [
            evaluator.embed(images[i : i + batch_size].to(device)).cpu()
            for i in range(0, len(images), batch_size)
        ]
    )
