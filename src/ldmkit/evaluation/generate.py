"""Generate the images an evaluation scores, and embed images in an evaluator's feature space."""

import time

import torch

from ldmkit.conditioning import Layout
from ldmkit.metrics.feature_network import FeatureNetwork, feature_device
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
    *,
    compile: bool = False,
    precision: str = "fp32",
) -> torch.Tensor:
    """Images (N, 3, H, W) in [-1, 1] for `labels` (N,); image i uses noise seed `seed + i`.

    Batches only group the work: each image's noise comes from its own generator, so the result
    does not depend on `batch_size`. `compile` and `precision` go to `LatentDiffusion.sample`.
    """
    if not model.config.num_classes:
        raise ValueError("this needs a class-conditional model (num_classes > 0)")
    chunks = []
    for start in progress(range(0, len(labels), batch_size), "sampling classes"):
        y = labels[start : start + batch_size]
        images = model.sample(
            len(y), y, guidance, sampler, steps, seed + start, compile=compile, precision=precision
        )
        chunks.append(images.cpu())
    return torch.cat(chunks)


@torch.no_grad()
def sample_prompts(
    model: LatentDiffusion,
    prompts: list[str],
    guidance: float = 3.0,
    sampler: str = "ddim",
    steps: int = 50,
    seed: int = 0,
    batch_size: int = 30,
    *,
    compile: bool = False,
    precision: str = "fp32",
) -> torch.Tensor:
    """Images (N, 3, H, W) in [-1, 1] for N prompts of a text model; image i uses seed + i."""
    if not model.takes_prompts:
        raise ValueError("this needs a text-conditional model")
    chunks = []
    for start in progress(range(0, len(prompts), batch_size), "sampling prompts"):
        part = prompts[start : start + batch_size]
        images = model.sample(
            len(part),
            None,
            guidance,
            sampler,
            steps,
            seed + start,
            prompts=part,
            compile=compile,
            precision=precision,
        )
        chunks.append(images.cpu())
    return torch.cat(chunks)


def shapes_prompts(n: int) -> tuple[list[str], torch.Tensor]:
    """`n` one-object prompts ("a small red circle") cycling through the 30 shapes classes and
    then the three sizes, with their class labels, for scoring text models with the evaluator."""
    from ldmkit.data.shapes import NUM_CLASSES, SIZES, class_name

    labels = torch.arange(n) % NUM_CLASSES
    prompts = [
        f"a {SIZES[(i // NUM_CLASSES) % len(SIZES)]} {class_name(int(y))}"
        for i, y in enumerate(labels)
    ]
    return prompts, labels


def heldout_layouts(n: int) -> list[Layout]:
    """The layouts of the first `n` held-out multi-object shapes scenes (boxes as fractions,
    so they fit any resolution)."""
    from ldmkit.data.shapes import HELDOUT_SEED, ShapesConfig, ShapesDataset

    scenes = ShapesDataset(ShapesConfig(resolution=64), size=max(1, n), seed=HELDOUT_SEED)
    return [scenes.sample(i).layout for i in range(n)]


@torch.no_grad()
def generate(
    model: LatentDiffusion,
    n: int,
    guidance: float = 3.0,
    sampler: str = "ddim",
    steps: int = 50,
    seed: int = 0,
    batch_size: int = 30,
    *,
    compile: bool = False,
    precision: str = "fp32",
) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """(images (n, 3, H, W) on the CPU, labels or None, seconds spent).

    Class-conditional models cycle through their classes with classifier-free guidance; text
    models get one-object shapes prompts of those classes (`shapes_prompts`), layout models the
    held-out shapes layouts; unconditional ones ignore `guidance`. Image i draws its noise from
    seed + i. `compile` and `precision` go to `LatentDiffusion.sample`.
    """
    fast = {"compile": compile, "precision": precision}
    started = time.perf_counter()
    labels = None
    if model.takes_prompts:
        prompts, labels = shapes_prompts(n)
        images = sample_prompts(model, prompts, guidance, sampler, steps, seed, batch_size, **fast)
    elif model.config.num_classes:
        labels = torch.arange(n) % model.config.num_classes
        images = sample_classes(model, labels, guidance, sampler, steps, seed, batch_size, **fast)
    elif model.takes_layouts:
        layouts = heldout_layouts(n)
        chunks = [
            model.sample(
                len(part), None, guidance, sampler, steps, seed + s, layouts=part, **fast
            ).cpu()
            for s in progress(range(0, n, batch_size), "sampling layouts")
            for part in [layouts[s : s + batch_size]]
        ]
        images = torch.cat(chunks)
    else:
        chunks = [
            model.sample(min(batch_size, n - s), None, 1.0, sampler, steps, seed + s, **fast).cpu()
            for s in progress(range(0, n, batch_size), "sampling")
        ]
        images = torch.cat(chunks)
    return images, labels, time.perf_counter() - started


@torch.no_grad()
def embed(network: FeatureNetwork, images: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """The network's features (N, D) of `images` (an evaluator's penultimate layer, or
    InceptionV3's pool features), on the CPU."""
    device = feature_device(network)
    return torch.cat(
        [
            network.embed(images[i : i + batch_size].to(device)).cpu()
            for i in range(0, len(images), batch_size)
        ]
    )
