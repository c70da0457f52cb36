"""The convolutional residual block of the LDM autoencoder (no timestep input)."""

import torch
import torch.nn.functional as F
from torch import nn

from ldmkit.nn.normalization import group_norm


class ResnetBlock(nn.Module):
    """norm -> SiLU -> conv3x3, twice, plus a (1x1-projected) skip connection."""

    def __init__(self, in_channels: int, out_channels: int, groups: int = 32, dropout: float = 0.0):
        super().__init__()
        self.norm1 = group_norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        # Name kept from the original architecture so its checkpoints map one to one.
        self.nin_shortcut = (
            nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H, W). Without autograd, the activations and the sum
        are taken in place: one full-size tensor fewer at once (a 512x512 decode's peak)."""
        if torch.is_grad_enabled():
            h = self.conv1(F.silu(self.norm1(x)))
            h = self.conv2(self.dropout(F.silu(self.norm2(h))))
            skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
            return skip + h
        h = self.norm1(x)
        h = self.conv1(F.silu(h, inplace=h is not x))  # no norm (groups 0): x itself
        h = self.conv2(self.dropout(F.silu(self.norm2(h), inplace=True)))
        return h.add_(x if self.nin_shortcut is None else self.nin_shortcut(x))
