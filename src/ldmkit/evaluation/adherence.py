"""Class adherence of a class-conditional LDM: sample each class, ask the evaluator what it drew."""

from typing import Any

import torch

from ldmkit.evaluation.batched import EVALUATION_OPTIONS, options_record
from ldmkit.evaluation.generate import generate
from ldmkit.metrics.class_evaluator import ClassEvaluator
from ldmkit.pipeline import LatentDiffusion
from ldmkit.samplers import SamplingOptions


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
    """The model's classes must be the evaluator's, or the scores mean nothing. Text models are
    asked for shapes classes by name, so they need a 30-class (shapes) evaluator."""
    if model.takes_prompts:
        from ldmkit.data.shapes import NUM_CLASSES

        if evaluator.config.num_classes != NUM_CLASSES:
            raise ValueError(
                "text adherence prompts shapes classes ('a small red circle'); use the shapes "
                f"evaluator ({NUM_CLASSES} classes), not one with {evaluator.config.num_classes}"
            )
        return
    classes = model.num_classes
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
    options: SamplingOptions = EVALUATION_OPTIONS,
    batch_size: int = 30,
) -> dict[str, Any]:
    """Generate `n` images cycling through the classes (text models: prompts naming them);
    report the evaluator's accuracies."""
    check_label_spaces(model, evaluator)
    options = model.resolve(options)
    images, labels, seconds = generate(model, n, options, batch_size)
    assert labels is not None  # class-conditional, checked above
    return {
        "n": n,
        **options_record(options),
        **score_adherence(evaluator, images, labels),
        "seconds_per_image": seconds / n,
    }
