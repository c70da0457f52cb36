"""Full-reference image quality: PSNR and SSIM (Wang et al. 2004), one score per image."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gaussian_window", "psnr", "ssim"]

# Wang, Bovik, Sheikh & Simoncelli 2004, "Image quality assessment: from error visibility to
# structural similarity", Sec. III-C: 11x11 circular-symmetric Gaussian, sigma 1.5, K1, K2.
SSIM_WINDOW_SIZE = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_pair(x: Tensor, y: Tensor, data_range: float, name: str) -> None:
    """Raise a ValueError that says how to fix the input if (x, y) is not a valid image pair."""
    if x.ndim != 4:
        raise ValueError(
            f"{name} expects images of shape (B, C, H, W); got x with shape {tuple(x.shape)}. "
            "Add a batch dimension with x.unsqueeze(0) for a single image."
        )
    if x.shape != y.shape:
        raise ValueError(
            f"{name} expects x and y of the same shape; got {tuple(x.shape)} and "
            f"{tuple(y.shape)}. Resize or crop one image to match the other."
        )
    if not (x.is_floating_point() and y.is_floating_point()):
        raise ValueError(
            f"{name} expects floating-point images; got {x.dtype} and {y.dtype}. "
            "Convert uint8 images with x.float() / 127.5 - 1 and pass data_range=2.0."
        )
    if not data_range > 0:
        raise ValueError(
            f"{name} expects data_range > 0 (max - min of the pixel scale); got {data_range}. "
            "Use 2.0 for images in [-1, 1], 1.0 for [0, 1], 255.0 for [0, 255]."
        )


def psnr(x: Tensor, y: Tensor, data_range: float = 2.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image, (B,); +inf where x equals y."""
    _check_pair(x, y, data_range, "psnr")
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    mse = (x.to(dtype) - y.to(dtype)).square().mean(dim=(1, 2, 3))  # (B,)
    # PSNR = 10 log10(L^2 / MSE); MSE = 0 gives L^2 / 0 = +inf, which is the defined limit.
    return 10.0 * torch.log10(data_range**2 / mse)


def gaussian_window(
    size: int = SSIM_WINDOW_SIZE,
    sigma: float = SSIM_SIGMA,
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
) -> Tensor:
    """Normalised 2-D Gaussian window (size, size) summing to one."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"gaussian_window expects an odd positive size; got {size}.")
    if not sigma > 0:
        raise ValueError(f"gaussian_window expects sigma > 0; got {sigma}.")
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()  # (size,)
    return torch.outer(g, g).to(dtype)  # (size, size), separable and normalised


def ssim(x: Tensor, y: Tensor, data_range: float = 2.0) -> Tensor:
    """Mean structural similarity per image, (B,): Gaussian 11x11 window, valid positions only."""
    _check_pair(x, y, data_range, "ssim")
    _, channels, height, width = x.shape
    if height < SSIM_WINDOW_SIZE or width < SSIM_WINDOW_SIZE:
        raise ValueError(
            f"ssim needs images of at least {SSIM_WINDOW_SIZE}x{SSIM_WINDOW_SIZE} pixels (the "
            f"Gaussian window size); got {height}x{width}. Upsample the images or use psnr."
        )
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    x = x.to(dtype)
    y = y.to(dtype)

    window = gaussian_window(dtype=dtype, device=x.device)
    weight = window.expand(channels, 1, SSIM_WINDOW_SIZE, SSIM_WINDOW_SIZE)  # depthwise

    def local_mean(t: Tensor) -> Tensor:
        # Gaussian-weighted local mean per channel, no padding: (B, C, H-10, W-10).
        return F.conv2d(t, weight, groups=channels)

    mu_x = local_mean(x)
    mu_y = local_mean(y)
    mu_xx = mu_x * mu_x
    mu_yy = mu_y * mu_y
    mu_xy = mu_x * mu_y
    sigma_xx = local_mean(x * x) - mu_xx
    sigma_yy = local_mean(y * y) - mu_yy
    sigma_xy = local_mean(x * y) - mu_xy

    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    # Eq. 13, Wang et al. 2004.
    ssim_map = ((2 * mu_xy + c1) * (2 * sigma_xy + c2)) / (
        (mu_xx + mu_yy + c1) * (sigma_xx + sigma_yy + c2)
    )
    return ssim_map.mean(dim=(1, 2, 3))  # mean over channels and window positions (Eq. 17)


def masked_psnr(x: Tensor, y: Tensor, mask: Tensor, data_range: float = 2.0) -> Tensor:
    """PSNR in dB per image over the pixels where `mask` (B, 1, H, W) is 1 (e.g. a hole)."""
    _check_pair(x, y, data_range, "masked_psnr")
    if mask.shape[0] != x.shape[0] or mask.shape[1] != 1 or mask.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"mask must be (B, 1, H, W) for images {tuple(x.shape)}")
    weight = mask.to(torch.float32)
    area = weight.sum(dim=(1, 2, 3)) * x.shape[1]
    if (area == 0).any():
        raise ValueError("masked_psnr: a mask selects no pixel")
    mse = ((x.float() - y.float()).square() * weight).sum(dim=(1, 2, 3)) / area
    return 10.0 * torch.log10(data_range**2 / mse)
