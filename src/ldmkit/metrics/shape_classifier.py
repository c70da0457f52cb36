"""A small CNN that names a single shape's kind and colour: the adherence evaluator for `shapes`.

Trained on ground truth (the dataset's labels), it scores generated images against the class
that was asked for. Its penultimate features can serve as domain features for FID later.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ClassifierConfig:
    """Width, input resolution and label space (kinds x colours) of the evaluator."""

    num_kinds: int = 5
    num_colors: int = 6
    width: int = 32
    resolution: int = 64

    @property
    def num_classes(self) -> int:
        """Number of (kind, colour) classes: class_id = kind * num_colors + colour."""
        return self.num_kinds * self.num_colors


class ShapeClassifier(nn.Module):
    """Conv net with two heads: kind logits and colour logits."""

    def __init__(self, config: ClassifierConfig):
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
        """Fractions of images whose kind, colour, and both match the requested classes."""
        kind, color = self(images)
        kind_ok = kind.argmax(1) == class_ids // self.config.num_colors
        color_ok = color.argmax(1) == class_ids % self.config.num_colors
        return {
            "kind": kind_ok.float().mean().item(),
            "color": color_ok.float().mean().item(),
            "both": (kind_ok & color_ok).float().mean().item(),
        }
