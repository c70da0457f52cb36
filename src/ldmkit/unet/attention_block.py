"""The UNet's plain self-attention block (`use_spatial_transformer=False`): the attention of the
ADM / guided-diffusion UNet that the CompVis unconditional and super-resolution LDMs use.

GroupNorm, one 1x1 convolution to q, k, v, multi-head attention over all pixels, a 1x1 output
projection, residual. The fused projection's channels are grouped per head as [q, k, v] of head
0, then of head 1, ... (guided-diffusion's "legacy" order, `QKVAttentionLegacy`); the names
(`norm`, `qkv`, `proj_out`; Conv1d weights) are CompVis's.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ldmkit.nn import group_norm
from ldmkit.unet.res_block import NORM_EPS


class AttentionBlock(nn.Module):
    """Residual multi-head self-attention over the pixels of (B, C, H, W)."""

    def __init__(self, channels: int, heads: int, groups: int = 32):
        super().__init__()
        if channels % heads:
            raise ValueError(f"{heads} heads do not divide {channels} channels")
        self.heads = heads
        self.norm = group_norm(channels, groups, NORM_EPS)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)
        for p in self.proj_out.parameters():  # zero-initialised: a fresh block is the identity
            nn.init.zeros_(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x).reshape(b, c, h * w))  # (B, 3C, T)
        # Legacy order: per head, [q, k, v] of C / heads channels each. Tokens get unit stride
        # so SDPA takes its fused kernel (the fallback's memory grows with T^2).
        qkv = qkv.reshape(b, self.heads, 3 * c // self.heads, h * w).transpose(2, 3).contiguous()
        q, k, v = qkv.chunk(3, dim=-1)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, T, C / heads)
        out = out.transpose(2, 3).reshape(b, c, h * w)
        return x + self.proj_out(out).reshape(b, c, h, w)
