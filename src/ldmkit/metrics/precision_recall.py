"""Improved precision and recall (Kynkaanniemi et al. 2019) between two feature sets.

Each set's manifold is the union of balls around its points, each ball reaching that point's
k-th nearest neighbour in the same set. Precision: the share of generated points inside the real
manifold (how many samples look real). Recall: the share of real points inside the generated
manifold (how much of the data the samples cover). The paper uses k = 3.
"""

import torch


def _pairwise(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x.unsqueeze(0), y.unsqueeze(0)).squeeze(0)


def knn_radii(features: torch.Tensor, k: int = 3, chunk: int = 1024) -> torch.Tensor:
    """Distance from each point (N, D) to its k-th nearest other point, (N,)."""
    n = features.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} points, got {k}")
    radii = []
    for start in range(0, n, chunk):
        d = _pairwise(features[start : start + chunk], features)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # the 1st is the point itself (0)
    return torch.cat(radii)


def _inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int) -> float:
    hits = []
    for start in range(0, points.shape[0], chunk):
        d = _pairwise(points[start : start + chunk], centres)
        hits.append((d <= radii.unsqueeze(0)).any(dim=1))
    return torch.cat(hits).double().mean().item()


@torch.no_grad()
def precision_recall(
    real: torch.Tensor, fake: torch.Tensor, k: int = 3, chunk: int = 1024
) -> dict[str, float]:
    """{"precision", "recall"} of `fake` (M, D) against `real` (N, D), both in [0, 1]."""
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"features must be (N, D) and (M, D) with the same D, got {tuple(real.shape)} and "
            f"{tuple(fake.shape)}"
        )
    real, fake = real.double(), fake.double()
    precision = _inside(fake, real, knn_radii(real, k, chunk), chunk)
    recall = _inside(real, fake, knn_radii(fake, k, chunk), chunk)
    return {"precision": precision, "recall": recall}
