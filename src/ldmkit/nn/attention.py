"""Multi-head (cross-)attention over token sequences, computed by SDPA."""

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head attention; self-attention when `context_dim` is None, else cross-attention.

    Parameter names (`to_q`, `to_k`, `to_v` without bias, `to_out.0` with bias) follow the
    CompVis `CrossAttention` so LDM / Stable Diffusion checkpoints map one to one.
    """

    def __init__(
        self,
        query_dim: int,
        context_dim: int | None = None,
        heads: int = 8,
        dim_head: int = 64,
        dropout: float = 0.0,
    ):
        super().__init__()
        if heads < 1 or dim_head < 1:
            raise ValueError(
                f"attention needs heads >= 1 and dim_head >= 1, got {heads}, {dim_head}"
            )
        inner = heads * dim_head
        self.heads = heads
        self.dim_head = dim_head
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=False)
        # Dropout on the projected output, as in LDM (no dropout on the attention weights).
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(dropout))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        # (B, N, heads * dim_head) -> (B, heads, N, dim_head)
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.dim_head).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, query_dim), context (B, M, context_dim) or None -> (B, N, query_dim)."""
        context = x if context is None else context
        q, k, v = (
            self._split(self.to_q(x)),
            self._split(self.to_k(context)),
            self._split(self.to_v(context)),
        )
        # softmax(q k^T / sqrt(dim_head)) v, Vaswani et al. 2017, Eq. 1.
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, dim_head)
        b, _, n, _ = out.shape
        return self.to_out(out.transpose(1, 2).reshape(b, n, self.heads * self.dim_head))
