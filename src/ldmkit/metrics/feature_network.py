"""What FID, KID, precision/recall and rFID need from a feature network: `embed(images)`.

Two kinds plug in: the standard FID InceptionV3 (`metrics.inception`, weights from a local file)
and the domain features of the built-in datasets (`ClassEvaluator`, the adherence evaluator's
penultimate layer).
"""

from collections.abc import Iterator
from typing import Protocol

import torch


class FeatureNetwork(Protocol):
    """Maps images in [-1, 1], (N, 3, H, W), to features (N, D)."""

    def embed(self, images: torch.Tensor) -> torch.Tensor: ...

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...


def feature_device(network: FeatureNetwork) -> torch.device:
    """Where the network's weights live (inputs go there)."""
    return next(network.parameters()).device
