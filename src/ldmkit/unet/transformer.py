"""The spatial transformer: attention over the pixels of a feature map (Rombach et al., 3.3)."""

import torch
from torch import nn

from ldmkit.nn import Attention, FeedForward, grid_fourier_features, group_norm


class BasicTransformerBlock(nn.Module):
    """Pre-norm self-attention, cross-attention (when `context_dim` is set), GEGLU feed-forward.

    Names (`attn1`, `attn2`, `ff`, `norm1..3`) follow the CompVis `BasicTransformerBlock`;
    without a context there is no `attn2` / `norm2` (CompVis would repeat self-attention there).
    `only_cross` makes `attn1` attend to the context too (CompVis `disable_self_attn`, diffusers
    `only_cross_attention`; the x4 upscaler's outer levels).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        dim_head: int,
        context_dim: int | None = None,
        dropout: float = 0.0,
        only_cross: bool = False,
    ):
        super().__init__()
        if only_cross and not context_dim:
            raise ValueError("a cross-attention-only transformer needs a context_dim")
        self.only_cross = only_cross
        self.attn1 = Attention(dim, context_dim if only_cross else None, heads, dim_head, dropout)
        self.ff = FeedForward(dim, dropout=dropout)
        self.attn2 = Attention(dim, context_dim, heads, dim_head, dropout) if context_dim else None
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim) if context_dim else None
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, dim), context (B, M, context_dim) -> (B, N, dim)."""
        x = x + self.attn1(self.norm1(x), context if self.only_cross else None)
        if self.attn2 is not None and self.norm2 is not None:
            x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """norm -> proj_in -> transformer blocks over the H*W tokens -> proj_out (zero-init) + input.

    `use_linear` chooses linear projections on tokens (SD 2) over 1x1 convolutions (LDM, SD 1);
    the two are the same map, only the checkpoint layout differs. With `position_frequencies`,
    a learned projection of each token's Fourier position features is added after proj_in.
    """

    def __init__(
        self,
        channels: int,
        heads: int,
        dim_head: int,
        depth: int = 1,
        context_dim: int | None = None,
        dropout: float = 0.0,
        use_linear: bool = False,
        groups: int = 32,
        position_frequencies: int = 0,
        only_cross: bool = False,
    ):
        super().__init__()
        inner = heads * dim_head
        self.position_frequencies = position_frequencies
        self.position: nn.Linear | None = None
        if position_frequencies:
            self.position = nn.Linear(4 * position_frequencies, inner)
        self.use_linear = use_linear
        # CompVis `Normalize`: eps 1e-6, unlike the ResBlocks' 1e-5.
        self.norm = group_norm(channels, groups, eps=1e-6)
        self.proj_in: nn.Module = (
            nn.Linear(channels, inner) if use_linear else nn.Conv2d(channels, inner, 1)
        )
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, heads, dim_head, context_dim, dropout, only_cross)
            for _ in range(depth)
        )
        proj_out = nn.Linear(inner, channels) if use_linear else nn.Conv2d(inner, channels, 1)
        for p in proj_out.parameters():
            nn.init.zeros_(p)
        self.proj_out: nn.Module = proj_out

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, H, W), context (B, M, context_dim) or None -> (B, C, H, W)."""
        b, _, h, w = x.shape
        tokens = self.norm(x)
        if not self.use_linear:
            tokens = self.proj_in(tokens)
        tokens = tokens.flatten(2).transpose(1, 2)  # (B, HW, inner)
        if self.use_linear:
            tokens = self.proj_in(tokens)
        if self.position is not None:
            features = grid_fourier_features(
                h, w, self.position_frequencies, tokens.device, self.position.weight.dtype
            )
            tokens = tokens + self.position(features).to(tokens.dtype)
        for block in self.transformer_blocks:
            tokens = block(tokens, context)
        if self.use_linear:
            tokens = self.proj_out(tokens)
        tokens = tokens.transpose(1, 2).reshape(b, -1, h, w)  # (B, C or inner, H, W)
        if not self.use_linear:
            tokens = self.proj_out(tokens)
        return x + tokens
