"""The UNet's residual block, conditioned on the timestep (and class) embedding."""

import torch
from torch import nn

from ldmkit.nn import group_norm
from ldmkit.unet.resampling import Downsample, Upsample

# The UNet's group norms use PyTorch's default eps (CompVis GroupNorm32, diffusers norm_eps).
NORM_EPS = 1e-5


class ResBlock(nn.Module):
    """norm-SiLU-conv, add the projected embedding, norm-SiLU-dropout-conv, plus the skip.

    Names (`in_layers.{0,2}`, `emb_layers.1`, `out_layers.{0,3}`, `skip_connection`) follow the
    CompVis `openaimodel.ResBlock`. The last convolution starts at zero, so a fresh block is the
    identity (or the 1x1 skip projection).
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        out_channels: int,
        dropout: float = 0.0,
        use_scale_shift_norm: bool = False,
        groups: int = 32,
        up: bool = False,
        down: bool = False,
    ):
        super().__init__()
        if up and down:
            raise ValueError("a ResBlock resamples up or down, not both")
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(
            group_norm(channels, groups, NORM_EPS),
            nn.SiLU(),
            nn.Conv2d(channels, out_channels, 3, padding=1),
        )
        self.resample = up or down
        # Parameter-free resampling of both paths, between the first norm and conv (BigGAN-style).
        if up:
            self.h_upd: nn.Module = Upsample(channels, use_conv=False)
            self.x_upd: nn.Module = Upsample(channels, use_conv=False)
        elif down:
            self.h_upd = Downsample(channels, use_conv=False)
            self.x_upd = Downsample(channels, use_conv=False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        # Scale and shift need two vectors per channel, the additive form one.
        emb_out = 2 * out_channels if use_scale_shift_norm else out_channels
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, emb_out))
        out_conv = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        for p in out_conv.parameters():
            nn.init.zeros_(p)
        self.out_layers = nn.Sequential(
            group_norm(out_channels, groups, NORM_EPS), nn.SiLU(), nn.Dropout(dropout), out_conv
        )
        self.skip_connection: nn.Module = (
            nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, H, W), emb (B, E) -> (B, C_out, H', W') with H' = H, 2H or H/2."""
        if self.resample:
            h = self.in_layers[1](self.in_layers[0](x))
            h = self.in_layers[2](self.h_upd(h))
            x = self.x_upd(x)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).to(h.dtype)[:, :, None, None]  # (B, C_out or 2C_out, 1, 1)
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h
