"""The gated-GELU (GEGLU) feed-forward of the LDM transformer blocks."""

import torch
import torch.nn.functional as F
from torch import nn


class GEGLU(nn.Module):
    """Linear to twice the width, then value * GELU(gate) (Shazeer 2020, "GLU Variants")."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, 2 * dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., dim_in) -> (..., dim_out)."""
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU -> dropout -> linear; names `net.0.proj`, `net.2` as in the CompVis FeedForward."""

    def __init__(self, dim: int, dim_out: int | None = None, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        inner = dim * mult
        self.net = nn.Sequential(
            GEGLU(dim, inner), nn.Dropout(dropout), nn.Linear(inner, dim_out or dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., dim) -> (..., dim_out)."""
        return self.net(x)
