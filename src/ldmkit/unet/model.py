"""The denoiser: a UNet with timestep-conditioned ResBlocks and spatial transformers.

The CompVis `openaimodel.UNetModel` layout (Ho et al. 2020; Dhariwal & Nichol 2021; Rombach et
al. 2022, Sec. 3.3): `input_blocks` (conv_in, then per level ResBlocks [+ transformers] and a
downsampler), `middle_block` (Res, transformer, Res), `output_blocks` (per level, deepest first,
ResBlocks over [h, skip] [+ transformers] and an upsampler), `out`. Names are kept so LDM and
Stable Diffusion checkpoints map one to one. The network knows no noise schedule: `t` is only
embedded.
"""

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ldmkit.nn import group_norm, timestep_embedding
from ldmkit.unet.attention_block import AttentionBlock
from ldmkit.unet.config import UNetConfig
from ldmkit.unet.res_block import NORM_EPS, ResBlock
from ldmkit.unet.resampling import Downsample, Upsample
from ldmkit.unet.transformer import SpatialTransformer


def _apply(
    layer: nn.Module, h: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None
) -> torch.Tensor:
    # Each layer takes what it needs: ResBlocks the embedding, transformers the context.
    if isinstance(layer, ResBlock):
        return layer(h, emb)
    if isinstance(layer, SpatialTransformer):
        return layer(h, context)
    return layer(h)


class TimestepSequential(nn.Sequential):
    """A sequence of layers, handing the embedding and context to those that take them."""

    def forward(  # type: ignore[override]
        self,
        h: torch.Tensor,
        emb: torch.Tensor,
        context: torch.Tensor | None = None,
        use_checkpoint: bool = False,
    ) -> torch.Tensor:
        """h (B, C, H, W), emb (B, E), context (B, M, d) -> (B, C', H', W')."""
        for layer in self:
            heavy = isinstance(layer, ResBlock | SpatialTransformer | AttentionBlock)
            if use_checkpoint and heavy and torch.is_grad_enabled():
                # Activations are recomputed in backward; the RNG state is replayed for dropout.
                h = checkpoint(_apply, layer, h, emb, context, use_reentrant=False)
            else:
                h = _apply(layer, h, emb, context)
        return h


class UNet(nn.Module):
    """eps / v / x0 predictor: (x_t (B, C, H, W), t (B,), context, y) -> (B, out_channels, H, W)."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        emb_dim = 4 * c.model_channels
        self.time_embed = nn.Sequential(
            nn.Linear(c.model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.label_emb = nn.Embedding(c.num_classes, emb_dim) if c.num_classes else None

        def res(channels: int, out: int, **resample: bool) -> ResBlock:
            return ResBlock(
                channels,
                emb_dim,
                out,
                c.dropout,
                c.use_scale_shift_norm,
                c.norm_groups,
                **resample,
            )

        def transformer(
            channels: int, level: int | None = None
        ) -> SpatialTransformer | AttentionBlock:
            heads, dim_head = c.heads_at(channels)
            if not c.use_spatial_transformer:
                return AttentionBlock(channels, heads, c.norm_groups)
            only_cross = (
                level is not None
                and bool(c.only_cross_attention)
                and (c.only_cross_attention[level])
            )
            return SpatialTransformer(
                channels,
                heads,
                dim_head,
                c.transformer_depth,
                c.context_dim,
                c.dropout,
                c.use_linear_in_transformer,
                c.norm_groups,
                c.position_frequencies,
                only_cross,
            )

        self.input_blocks = nn.ModuleList(
            [TimestepSequential(nn.Conv2d(c.in_channels, c.model_channels, 3, padding=1))]
        )
        skip_channels = [c.model_channels]
        ch = c.model_channels
        last = len(c.channel_mult) - 1
        for level, (factor, mult) in enumerate(zip(c.factors, c.channel_mult, strict=True)):
            for _ in range(c.num_res_blocks):
                layers: list[nn.Module] = [res(ch, c.model_channels * mult)]
                ch = c.model_channels * mult
                if factor in c.attention_resolutions:
                    layers.append(transformer(ch, level))
                self.input_blocks.append(TimestepSequential(*layers))
                skip_channels.append(ch)
            if level != last:
                down = res(ch, ch, down=True) if c.resblock_updown else None
                self.input_blocks.append(
                    TimestepSequential(down or Downsample(ch, c.conv_resample))
                )
                skip_channels.append(ch)

        self.middle_block = TimestepSequential(res(ch, ch), transformer(ch), res(ch, ch))

        self.output_blocks = nn.ModuleList()
        for level in reversed(range(len(c.channel_mult))):
            factor, mult = c.factors[level], c.channel_mult[level]
            for i in range(c.num_res_blocks + 1):
                layers = [res(ch + skip_channels.pop(), c.model_channels * mult)]
                ch = c.model_channels * mult
                if factor in c.attention_resolutions:
                    layers.append(transformer(ch, level))
                if level and i == c.num_res_blocks:
                    up = res(ch, ch, up=True) if c.resblock_updown else None
                    layers.append(up or Upsample(ch, c.conv_resample))
                self.output_blocks.append(TimestepSequential(*layers))

        out_conv = nn.Conv2d(ch, c.out_channels, 3, padding=1)
        # Zero-initialised, so a fresh network predicts exactly 0.
        for p in out_conv.parameters():
            nn.init.zeros_(p)
        self.out = nn.Sequential(group_norm(ch, c.norm_groups, NORM_EPS), nn.SiLU(), out_conv)

    def _check_inputs(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor | None,
        y: torch.Tensor | None,
    ) -> None:
        c = self.config
        if x.ndim != 4 or x.shape[1] != c.in_channels:
            raise ValueError(f"x must be (B, {c.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[2] % c.factor or x.shape[3] % c.factor:
            raise ValueError(
                f"H and W must be multiples of {c.factor} (2 ** (len(channel_mult) - 1)), "
                f"got {tuple(x.shape[2:])}; crop or pad the latent"
            )
        if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != x.shape[0]):
            raise ValueError(f"t must be a scalar or (B,) = ({x.shape[0]},), got {tuple(t.shape)}")
        if c.context_dim is None and context is not None:
            raise ValueError("this UNet has no cross-attention (context_dim=None); pass no context")
        if c.context_dim is not None:
            expected = (x.shape[0], "M", c.context_dim)
            if context is None:
                raise ValueError(f"this UNet needs context of shape {expected} (context_dim set)")
            if (
                context.ndim != 3
                or context.shape[0] != x.shape[0]
                or context.shape[2] != c.context_dim
            ):
                raise ValueError(f"context must be {expected}, got {tuple(context.shape)}")
        if c.num_classes is None and y is not None:
            raise ValueError("this UNet has no class embedding (num_classes=None); pass no y")
        bad_y = y is None or y.shape != (x.shape[0],) or y.is_floating_point()
        if c.num_classes is not None and bad_y:
            got = None if y is None else (tuple(y.shape), y.dtype)
            raise ValueError(
                f"this UNet needs integer class labels y of shape ({x.shape[0]},) in "
                f"[0, {c.num_classes}); got {got}"
            )

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, C_in, H, W), t (B,) int or float, context (B, M, d), y (B,) -> (B, C_out, H, W)."""
        self._check_inputs(x, t, context, y)
        t = t.expand(x.shape[0]) if t.ndim == 0 else t
        t_emb = timestep_embedding(t, self.config.model_channels)  # (B, model_channels)
        dtype = next(self.parameters()).dtype  # fp32, or bf16 / fp16 if the model was cast
        emb = self.time_embed(t_emb.to(dtype))  # (B, 4 * model_channels)
        if self.label_emb is not None and y is not None:
            emb = emb + self.label_emb(y)
        use_checkpoint = self.config.use_checkpoint and self.training
        h = x.to(dtype)
        skips = []
        for block in self.input_blocks:
            h = block(h, emb, context, use_checkpoint)
            skips.append(h)
        h = self.middle_block(h, emb, context, use_checkpoint)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb, context, use_checkpoint)
        return self.out(h)
