"""The convolutional decoder D: latent (B, c, h, w) -> image (B, C, h*f, w*f)."""

import torch
import torch.nn.functional as F
from torch import nn

from ldmkit.autoencoder.config import AutoencoderConfig
from ldmkit.autoencoder.encoder import Level, MidBlock
from ldmkit.nn import ResnetBlock, SpatialSelfAttention, Upsample, group_norm


class Decoder(nn.Module):
    """Mirror of the encoder with num_res_blocks + 1 blocks per level; `up[0]` is full size."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        c = config
        channels = c.model_channels * c.channel_mult[-1]
        self.conv_in = nn.Conv2d(c.z_channels, channels, 3, padding=1)
        self.mid = MidBlock(channels, c.norm_groups, c.dropout, c.mid_attention)
        levels: list[Level] = []
        for level in reversed(range(len(c.channel_mult))):
            stage = Level()
            out = c.model_channels * c.channel_mult[level]
            for _ in range(c.num_res_blocks + 1):
                stage.block.append(ResnetBlock(channels, out, c.norm_groups, c.dropout))
                channels = out
                if 2**level in c.attn_factors:
                    stage.attn.append(SpatialSelfAttention(channels, c.norm_groups))
            if level != 0:
                stage.upsample = Upsample(channels)
            levels.insert(0, stage)  # index by level, as the original layout does
        self.up = nn.ModuleList(levels)
        self.norm_out = group_norm(channels, c.norm_groups)
        self.patch = c.patch
        self.conv_out = nn.Conv2d(channels, c.out_channels * c.patch**2, 3, padding=1)

    @property
    def last_layer(self) -> torch.Tensor:
        """Weight of the final convolution (for the adaptive GAN weight)."""
        return self.conv_out.weight

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z_channels, h, w) -> (B, C_out, h*f, w*f)."""
        h = self.mid(self.conv_in(z))
        for stage in reversed(self.up):
            for i, block in enumerate(stage.block):
                h = block(h)
                if len(stage.attn) > 0:
                    h = stage.attn[i](h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        out = self.conv_out(F.silu(self.norm_out(h)))
        return F.pixel_shuffle(out, self.patch) if self.patch > 1 else out
