"""Down- and up-sampling by a factor of two."""

import torch
import torch.nn.functional as F
from torch import nn


class Downsample(nn.Module):
    """Strided 3x3 convolution with asymmetric (0, 1, 0, 1) padding, as in the LDM autoencoder."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H/2, W/2)."""
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour x2 followed by a 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, 2H, 2W); without autograd on the CPU, as `upsample_conv`."""
        if torch.is_grad_enabled() or x.device.type != "cpu":
            return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return upsample_conv(x, self.conv.weight, self.conv.bias)


# How the 3x3 kernel's taps along one axis fall on the low-resolution pixels an output pixel of
# each parity reads after a nearest x2 upsampling: even rows read rows i-1 (tap 0) and i (taps 1,
# 2); odd rows read i (taps 0, 1) and i+1 (tap 2).
_FOLDS = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])


def upsample_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """conv3x3(nearest_upsample_x2(x), weight, bias, padding 1) without the upsampled tensor:
    each of the output's four pixel parities is a 2x2 convolution of `x` itself, its taps sums
    of the 3x3 kernel's. 16 products per input pixel and channel pair instead of 36 (the SD
    decoder's upsamplings twice as fast), equal up to the rounding of the summed taps."""
    batch, _, height, width = x.shape
    layout = torch.contiguous_format if x.is_contiguous() else torch.channels_last
    out = torch.empty(
        batch, weight.shape[0], 2 * height, 2 * width,
        dtype=x.dtype, device=x.device, memory_format=layout,
    )  # fmt: skip
    folds = _FOLDS.to(x.device)
    for a in range(2):
        for b in range(2):
            kernel = torch.einsum("yk,xl,oikl->oiyx", folds[a], folds[b], weight.float())
            # Padding 1 on a 2x2 kernel: (H + 1) x (W + 1) outputs; parity a starts at row a.
            part = F.conv2d(x, kernel.to(weight.dtype), bias, padding=1)
            out[:, :, a::2, b::2] = part[:, :, a : a + height, b : b + width]
    return out
