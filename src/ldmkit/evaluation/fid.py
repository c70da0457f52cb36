"""FID, KID and precision/recall of generated images against held-out data, in the feature
space of any `FeatureNetwork`: the FID InceptionV3 (`metrics.inception`) or an adherence
evaluator's penultimate layer (the domain features of the built-in datasets). Features come from
a dataset (`dataset_features`) or from generated images (`evaluation.generate.generate`, then
`embed`).
"""

from typing import Any

import torch
from torch.utils.data import Dataset

from ldmkit.data.collate import collate
from ldmkit.metrics.distribution_distance import fid_from_features, kernel_inception_distance
from ldmkit.metrics.feature_network import FeatureNetwork, feature_device
from ldmkit.metrics.precision_recall import precision_recall
from ldmkit.progress import progress


@torch.no_grad()
def dataset_features(
    network: FeatureNetwork, dataset: Dataset[Any], n: int, batch_size: int = 250
) -> torch.Tensor:
    """Features (n, D) of the first `n` images of `dataset`."""
    count = len(dataset)  # type: ignore[arg-type]
    if count < n:
        raise ValueError(f"the dataset holds {count} images, fewer than the {n} asked for")
    device = feature_device(network)
    chunks = []
    for start in progress(range(0, n, batch_size), "real features"):
        items = collate([dataset[i] for i in range(start, min(n, start + batch_size))])
        chunks.append(network.embed(items["image"].to(device)).cpu())
    return torch.cat(chunks)


def distribution_scores(real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    """FID, KID (mean, std over 100 subsets) and improved precision/recall (k = 3) between two
    feature sets."""
    kid, kid_std = kernel_inception_distance(real, fake)
    scores = {"fid": fid_from_features(real, fake), "kid": kid, "kid_std": kid_std}
    if min(len(real), len(fake)) > 3:  # k = 3 neighbours need four points a side
        scores.update(precision_recall(real, fake))
    return scores
