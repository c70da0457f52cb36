"""Single-head spatial self-attention over all pixels (the autoencoder's attention block)."""

import torch
import torch.nn.functional as F
from torch import nn

from ldmkit.nn.normalization import group_norm


class SpatialSelfAttention(nn.Module):
    """Residual single-head attention with 1x1-conv projections, computed by SDPA."""

    def __init__(self, channels: int, groups: int = 32):
        super().__init__()
        self.norm = group_norm(channels, groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        b, c, h, w = x.shape
        y = self.norm(x)
        # (B, 1, HW, C): one head spanning all channels.
        q, k, v = (p(y).reshape(b, 1, c, h * w).transpose(-1, -2) for p in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj_out(out)
