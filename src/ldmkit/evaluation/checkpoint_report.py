"""One evaluation of a latent diffusion checkpoint: samples once, then FID/KID, adherence and
throughput from the same images, as a dict and as a Markdown table."""

from typing import Any

import torch
from torch.utils.data import Dataset

from ldmkit.evaluation.adherence import check_label_spaces, score_adherence
from ldmkit.evaluation.batched import EVALUATION_OPTIONS, options_record
from ldmkit.evaluation.fid import dataset_features, distribution_scores
from ldmkit.evaluation.generate import embed, generate
from ldmkit.metrics.class_evaluator import ClassEvaluator
from ldmkit.metrics.feature_network import FeatureNetwork
from ldmkit.pipeline import LatentDiffusion
from ldmkit.samplers import SamplingOptions


@torch.no_grad()
def evaluate_checkpoint(
    model: LatentDiffusion,
    evaluator: ClassEvaluator | None,
    real: Dataset[Any],
    n: int,
    options: SamplingOptions = EVALUATION_OPTIONS,
    batch_size: int = 30,
    features: FeatureNetwork | None = None,
) -> dict[str, Any]:
    """Generate `n` images (classes cycled for class-conditional models) and score them.

    FID/KID/precision/recall use `features` (e.g. the FID InceptionV3), by default the
    evaluator's own; adherence uses the evaluator, and is left out without one."""
    network = features or evaluator
    if network is None:
        raise ValueError("give an evaluator or a feature network (--evaluator or --inception)")
    if evaluator is not None and (model.num_classes or model.takes_prompts):
        check_label_spaces(model, evaluator)
    options = model.resolve(options)
    images, labels, seconds = generate(model, n, options, batch_size)
    result: dict[str, Any] = {
        "n": n,
        **options_record(options),  # its "sampling_precision": "precision" is P/R's
        "guidance": options.guidance if model.inputs else None,  # unconditional: none
        **distribution_scores(dataset_features(network, real, n), embed(network, images)),
    }
    if labels is not None and evaluator is not None:
        scores = score_adherence(evaluator, images, labels)
        result.update({f"adherence_{k}": v for k, v in scores.items()})
    result["images_per_s"] = n / seconds
    return result


def markdown_table(result: dict[str, Any]) -> str:
    """The result as a two-column Markdown table."""
    lines = ["| metric | value |", "| --- | --- |"]
    for key, value in result.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"| {key} | {shown} |")
    return "\n".join(lines) + "\n"
