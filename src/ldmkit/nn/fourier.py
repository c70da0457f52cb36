"""Fourier features of positions: sin and cos of 2^k pi x (k < frequencies) for each coordinate,
so nearby positions get similar vectors and a dot product can compare them."""

import torch


def fourier_features(coordinates: torch.Tensor, frequencies: int) -> torch.Tensor:
    """(..., D) coordinates in [0, 1] -> (..., 2 * D * frequencies): for each coordinate
    in turn, its sines then its cosines."""
    scales = torch.pi * 2.0 ** torch.arange(frequencies, device=coordinates.device)
    angles = coordinates[..., None] * scales.to(coordinates.dtype)  # (..., D, F)
    return torch.cat([angles.sin(), angles.cos()], -1).flatten(-2)


def grid_fourier_features(
    height: int,
    width: int,
    frequencies: int,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(height * width, 4 * frequencies): Fourier features of each grid cell's centre (x, y), in
    row-major order (the order of `x.flatten(2)` for an (B, C, H, W) map)."""
    ys = (torch.arange(height, device=device, dtype=dtype) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=dtype) + 0.5) / width
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2)  # (HW, 2): x, y
    return fourier_features(grid, frequencies)
