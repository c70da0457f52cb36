"""The UNet's down- and up-sampling by two (the CompVis `openaimodel` variants).

They differ from `ldmkit.nn.Downsample` / `Upsample` (the autoencoder's): the strided convolution
pads symmetrically and is named `op`, and either side may be parameter-free (`conv_resample`
false, or inside a resampling ResBlock).
"""

import torch
import torch.nn.functional as F
from torch import nn


class Downsample(nn.Module):
    """3x3 convolution with stride 2 and padding 1, or 2x2 average pooling without `use_conv`."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.op: nn.Module = (
            nn.Conv2d(channels, channels, 3, stride=2, padding=1) if use_conv else nn.AvgPool2d(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H/2, W/2)."""
        return self.op(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 convolution when `use_conv`."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1) if use_conv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, 2H, 2W)."""
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return x if self.conv is None else self.conv(x)
