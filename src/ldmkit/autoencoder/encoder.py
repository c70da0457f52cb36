"""The convolutional encoder E: image (B, C, H, W) -> features (B, c', H/f, W/f)."""

import torch
import torch.nn.functional as F
from torch import nn

from ldmkit.autoencoder.config import AutoencoderConfig
from ldmkit.nn import Downsample, ResnetBlock, SpatialSelfAttention, group_norm


class Level(nn.Module):
    """One resolution level: residual blocks, optional attention, optional resampling."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()


class MidBlock(nn.Module):
    """ResnetBlock -> attention -> ResnetBlock at the lowest resolution."""

    def __init__(self, channels: int, groups: int, dropout: float, attention: bool):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, groups, dropout)
        self.attn_1 = SpatialSelfAttention(channels, groups) if attention else nn.Identity()
        self.block_2 = ResnetBlock(channels, channels, groups, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, C, h, w)."""
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    """ResNet encoder; parameter names follow the original LDM layout for checkpoint mapping."""

    def __init__(self, config: AutoencoderConfig, out_channels: int):
        super().__init__()
        c = config
        self.patch = c.patch
        self.conv_in = nn.Conv2d(c.in_channels * c.patch**2, c.model_channels, 3, padding=1)
        self.down = nn.ModuleList()
        channels = c.model_channels
        for level, mult in enumerate(c.channel_mult):
            stage = Level()
            out = c.model_channels * mult
            for _ in range(c.num_res_blocks):
                stage.block.append(ResnetBlock(channels, out, c.norm_groups, c.dropout))
                channels = out
                if 2**level in c.attn_factors:
                    stage.attn.append(SpatialSelfAttention(channels, c.norm_groups))
            if level != len(c.channel_mult) - 1:
                stage.downsample = Downsample(channels)
            self.down.append(stage)
        self.mid = MidBlock(channels, c.norm_groups, c.dropout, c.mid_attention)
        self.norm_out = group_norm(channels, c.norm_groups)
        self.conv_out = nn.Conv2d(channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, out_channels, H/f, W/f)."""
        if self.patch > 1:
            x = F.pixel_unshuffle(x, self.patch)
        h = self.conv_in(x)
        for stage in self.down:
            for i, block in enumerate(stage.block):
                h = block(h)
                if len(stage.attn) > 0:
                    h = stage.attn[i](h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))
