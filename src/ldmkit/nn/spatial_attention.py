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
        # (B, HW, C) rows with unit stride, so SDPA takes its fused kernel: its memory grows
        # with HW, where the fallback's grows with HW^2 (34 GB for a 2048x2048 decode).
        tokens = self.norm(x).flatten(2).transpose(1, 2).contiguous()
        q, k, v = (_pointwise(p, tokens).unsqueeze(1) for p in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v).squeeze(1)  # one head spanning all channels
        out = _pointwise(self.proj_out, out)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


def _pointwise(conv: nn.Conv2d, tokens: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution applied to (B, N, C_in) tokens -> (B, N, C_out)."""
    return F.linear(tokens, conv.weight.flatten(1), conv.bias)
