"""Generate the images an evaluation scores, and embed images in an evaluator's feature space."""

import time
from collections.abc import Callable
from typing import Any

import torch

from ldmkit.conditioning import Layout
from ldmkit.evaluation.batched import EVALUATION_OPTIONS, sample_batches
from ldmkit.metrics.feature_network import FeatureNetwork, feature_device
from ldmkit.pipeline import LatentDiffusion
from ldmkit.samplers import SamplingOptions


@torch.no_grad()
def sample_classes(
    model: LatentDiffusion,
    labels: torch.Tensor,
    options: SamplingOptions = EVALUATION_OPTIONS,
    batch_size: int = 30,
) -> torch.Tensor:
    """Images (N, 3, H, W) in [-1, 1] for `labels` (N,); image i uses noise seed
    `options.seed + i`, whatever `batch_size` (it only groups the work)."""
    if model.conditioner("labels") is None:
        raise ValueError("this needs a class-conditional model (num_classes > 0)")
    images, _ = sample_batches(
        model, len(labels), options, batch_size, "sampling classes", labels=labels
    )
    return images


@torch.no_grad()
def sample_prompts(
    model: LatentDiffusion,
    prompts: list[str],
    options: SamplingOptions = EVALUATION_OPTIONS,
    batch_size: int = 30,
) -> torch.Tensor:
    """Images (N, 3, H, W) in [-1, 1] for N prompts of a text model; image i uses seed + i."""
    if not model.takes_prompts:
        raise ValueError("this needs a text-conditional model")
    images, _ = sample_batches(
        model, len(prompts), options, batch_size, "sampling prompts", prompts=prompts
    )
    return images


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


def _class_inputs(model: LatentDiffusion, n: int) -> tuple[Any, torch.Tensor | None]:
    labels = torch.arange(n) % model.num_classes
    return labels, labels


def _prompt_inputs(model: LatentDiffusion, n: int) -> tuple[Any, torch.Tensor | None]:
    return shapes_prompts(n)


def _layout_inputs(model: LatentDiffusion, n: int) -> tuple[Any, torch.Tensor | None]:
    return heldout_layouts(n), None


# What an evaluation samples each input with (by the conditioner's `input_name`): n values, and
# the class labels they ask for where they ask for some (scored by the adherence evaluator).
# Class models cycle through their classes; text models get one-object shapes prompts of those
# classes; layout models the held-out shapes layouts. A new input joins here to be evaluated.
EVALUATION_INPUTS: dict[str, Callable[[LatentDiffusion, int], tuple[Any, torch.Tensor | None]]] = {
    "labels": _class_inputs,
    "prompts": _prompt_inputs,
    "layouts": _layout_inputs,
}


def evaluation_inputs(model: LatentDiffusion, n: int) -> tuple[dict[str, Any], torch.Tensor | None]:
    """({input name: n values}, the class labels asked for or None) for every input `model`
    takes (`EVALUATION_INPUTS`); an input with no entry is an error naming the evaluation that
    takes it."""
    inputs: dict[str, Any] = {}
    labels = None
    for name in model.inputs:
        make = EVALUATION_INPUTS.get(name)
        if make is None:
            raise ValueError(
                f"held-out sampling has no inputs for a model that takes {name}; evaluate a "
                "model with a spatial condition with `ldmkit eval spatial`"
            )
        inputs[name], asked = make(model, n)
        labels = asked if asked is not None else labels
    return inputs, labels


@torch.no_grad()
def generate(
    model: LatentDiffusion,
    n: int,
    options: SamplingOptions = EVALUATION_OPTIONS,
    batch_size: int = 30,
) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """(images (n, 3, H, W) on the CPU, labels or None, seconds spent): `n` samples with the
    inputs `evaluation_inputs` gives; unconditional models sample without guidance. Image i
    draws its noise from seed + i."""
    started = time.perf_counter()
    inputs, labels = evaluation_inputs(model, n)
    if not inputs:
        options = options.replace(guidance=1.0)
    title = " ".join(["sampling", *inputs])
    images, _ = sample_batches(model, n, options, batch_size, title, **inputs)
    return images, labels, time.perf_counter() - started


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
