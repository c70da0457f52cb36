"""FID and KID of generated images against held-out data, in an evaluator's feature space.

The features are the penultimate layer of an adherence evaluator (`ClassEvaluator.embed`): the
domain features of the built-in datasets. Features come from a dataset (`dataset_features`) or
from generated images (`evaluation.generate.generate`, then `embed`).
"""

from typing import Any

import torch
from torch.utils.data import Dataset

from ldmkit.data.collate import collate
from ldmkit.metrics.class_evaluator import ClassEvaluator
from ldmkit.metrics.distribution_distance import fid_from_features, kernel_inception_distance
from ldmkit.progress import progress


@torch.no_grad()
def dataset_features(
    evaluator: ClassEvaluator, dataset: Dataset[Any], n: int, batch_size: int = 250
) -> torch.Tensor:
    """Features (n, D) of the first `n` images of `dataset`."""
    count = len(dataset)  # type: ignore[arg-type]
    if count < n:
        raise ValueError(f"the dataset holds {count} images, fewer than the {n} asked for")
    device = next(evaluator.parameters()).device
    chunks = []
    for start in progress(range(0, n, batch_size), "real features"):
        items = collate([dataset[i] for i in range(start, min(n, start + batch_size))])
        chunks.append(evaluator.embed(items["image"].to(device)).cpu())
    return torch.cat(chunks)


def distribution_scores(real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    """FID and KID (mean, std over 100 subsets) between two feature sets."""
    kid, kid_std = kernel_inception_distance(real, fake)
    return {"fid": fid_from_features(real, fake), "kid": kid, "kid_std": kid_std}
