"""The adherence evaluator: a small CNN that names the class of an image.

For `shapes` a class is a (kind, colour) pair and the network has one head for each factor, so
adherence can say which one a generator got wrong; for single-label data such as Fashion-MNIST
(`num_colors = 1`) the kind head is the class head. Trained on ground truth (the dataset's
labels), it scores generated images against the class that was asked for. Its penultimate
features can serve as domain features for FID.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class EvaluatorConfig:
    """Width, input resolution and label space (kinds x colours; colours = 1 for one label)."""

    num_kinds: int = 5
    num_colors: int = 6
    width: int = 32
    resolution: int = 64

    @property
    def num_classes(self) -> int:
        """Number of (kind, colour) classes: class_id = kind * num_colors + colour."""
        return self.num_kinds * self.num_colors


class ClassEvaluator(nn.Module):
    """Conv net with two heads: kind (or class) logits and colour logits."""

    def __init__(self, config: EvaluatorConfig):
        super().__init__()
        self.config = config
        w = config.width
        layers: list[nn.Module] = []
        channels = 3
        for out in (w, 2 * w, 4 * w, 4 * w):
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.SiLU()]
            layers += [nn.MaxPool2d(2)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.kind_head = nn.Linear(channels, config.num_kinds)
        self.color_head = nn.Linear(channels, config.num_colors)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, 4 * width) of images in [-1, 1]."""
        if images.shape[-1] != self.config.resolution:
            images = F.interpolate(images, size=self.config.resolution, mode="bilinear")
        return self.features(images).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(kind logits (B, K), colour logits (B, C))."""
        h = self.embed(images)
        return self.kind_head(h), self.color_head(h)

    def loss(self, images: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of both heads against class ids (kind * num_colors + colour)."""
        kind, color = self(images)
        return F.cross_entropy(kind, class_ids // self.config.num_colors) + F.cross_entropy(
            color, class_ids % self.config.num_colors
        )

    @torch.no_grad()
    def adherence(self, images: torch.Tensor, class_ids: torch.Tensor) -> dict[str, float]:
        """Fractions of images whose kind, colour, and both match the requested classes.

        With one colour the label has one factor and only `class` (the kind head) is reported.
        """
        kind, color = self(images)
        kind_ok = kind.argmax(1) == class_ids // self.config.num_colors
        if self.config.num_colors == 1:
            return {"class": kind_ok.float().mean().item()}
        color_ok = color.argmax(1) == class_ids % self.config.num_colors
        return {
            "kind": kind_ok.float().mean().item(),
            "color": color_ok.float().mean().item(),
            "both": (kind_ok & color_ok).float().mean().item(),
        }
