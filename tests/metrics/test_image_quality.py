"""Tests for PSNR and SSIM against analytic cases and an independent numpy reference."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from ldmkit.metrics.image_quality import gaussian_window, psnr, ssim


def _images(seed: int, shape: tuple[int, ...] = (2, 3, 24, 20)) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1


def _reference_ssim(x: np.ndarray, y: np.ndarray, data_range: float) -> np.ndarray:
    """SSIM written straight from Wang et al. 2004 with explicit 11x11 windows, float64."""
    size, sigma = 11, 1.5
    offsets = np.arange(size) - size // 2
    kernel_1d = np.exp(-(offsets**2) / (2 * sigma**2))
    kernel = np.outer(kernel_1d, kernel_1d)
    kernel /= kernel.sum()
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    scores = np.zeros(x.shape[0])
    for b in range(x.shape[0]):
        per_channel = []
        for c in range(x.shape[1]):
            # Every valid window position, (H-10, W-10, 11, 11).
            win_x = np.lib.stride_tricks.sliding_window_view(x[b, c], (size, size))
            win_y = np.lib.stride_tricks.sliding_window_view(y[b, c], (size, size))
            mean_x = (win_x * kernel).sum(axis=(-2, -1))
            mean_y = (win_y * kernel).sum(axis=(-2, -1))
            dev_x = win_x - mean_x[..., None, None]
            dev_y = win_y - mean_y[..., None, None]
            var_x = (kernel * dev_x**2).sum(axis=(-2, -1))
            var_y = (kernel * dev_y**2).sum(axis=(-2, -1))
            cov = (kernel * dev_x * dev_y).sum(axis=(-2, -1))
            luminance = (2 * mean_x * mean_y + c1) / (mean_x**2 + mean_y**2 + c1)
            structure = (2 * cov + c2) / (var_x + var_y + c2)
            per_channel.append((luminance * structure).mean())
        scores[b] = np.mean(per_channel)
    return scores


def test_psnr_constant_offset_matches_closed_form() -> None:
    x = _images(0)
    offset = 0.1
    expected = 10 * math.log10(2.0**2 / offset**2)  # MSE = offset^2
    result = psnr(x, x + offset)
    assert result.shape == (2,)
    torch.testing.assert_close(result, torch.full((2,), expected, dtype=torch.float64))


def test_psnr_is_per_image() -> None:
    x = _images(1)
    y = x.clone()
    y[1] += 0.5
    result = psnr(x, y, data_range=1.0)
    assert math.isinf(result[0].item()) and result[0] > 0
    assert result[1].item() == pytest.approx(10 * math.log10(1.0 / 0.25))


def test_identical_images_give_infinite_psnr_and_unit_ssim() -> None:
    x = _images(2).float()
    assert torch.isinf(psnr(x, x)).all()
    torch.testing.assert_close(ssim(x, x), torch.ones(2))


def test_ssim_decreases_with_noise() -> None:
    x = _images(3)
    generator = torch.Generator().manual_seed(4)
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float64)
    scores = [ssim(x, x + level * noise)[0].item() for level in (0.0, 0.05, 0.2, 0.8)]
    assert scores[0] == pytest.approx(1.0)
    assert all(a > b for a, b in itertools.pairwise(scores))


def test_ssim_is_symmetric() -> None:
    x, y = _images(5), _images(6)
    torch.testing.assert_close(ssim(x, y), ssim(y, x))


@pytest.mark.parametrize("data_range", [2.0, 1.0])
def test_ssim_matches_numpy_reference(data_range: float) -> None:
    x = _images(7)
    y = (x + 0.3 * _images(8)).clamp(-1, 1)
    expected = _reference_ssim(x.numpy(), y.numpy(), data_range)
    torch.testing.assert_close(ssim(x, y, data_range), torch.from_numpy(expected))
    # float32 input follows the float64 reference closely.
    torch.testing.assert_close(
        ssim(x.float(), y.float(), data_range),
        torch.from_numpy(expected).float(),
        atol=1e-5,
        rtol=1e-5,
    )


def test_ssim_window_is_normalised_gaussian() -> None:
    window = gaussian_window(dtype=torch.float64)
    assert window.shape == (11, 11)
    assert window.sum().item() == pytest.approx(1.0)
    assert window[5, 5] == window.max()
    torch.testing.assert_close(window, window.T)


def test_ssim_gradient_flows() -> None:
    x = _images(9).requires_grad_(True)
    y = _images(10)
    ssim(x, y).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    ("x", "y", "data_range", "message"),
    [
        (torch.zeros(3, 16, 16), torch.zeros(3, 16, 16), 2.0, "unsqueeze"),
        (torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 15), 2.0, "same shape"),
        (torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), 0.0, "data_range"),
        (torch.zeros(1, 3, 8, 16), torch.zeros(1, 3, 8, 16), 2.0, "at least 11x11"),
    ],
)
def test_ssim_rejects_bad_input(
    x: torch.Tensor, y: torch.Tensor, data_range: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ssim(x, y, data_range)


def test_psnr_rejects_integer_images() -> None:
    x = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match="floating-point"):
        psnr(x, x)
