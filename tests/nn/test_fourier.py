"""Fourier position features: layout and values match the token order of a flattened map."""

import torch

from ldmkit.nn import fourier_features, grid_fourier_features


def test_features_are_sines_then_cosines_per_coordinate() -> None:
    features = fourier_features(torch.tensor([[0.25, 0.5]]), 2)
    expected = torch.tensor(
        [
            [
                *torch.sin(torch.tensor([0.25 * torch.pi, 0.5 * torch.pi])),
                *torch.cos(torch.tensor([0.25 * torch.pi, 0.5 * torch.pi])),
                *torch.sin(torch.tensor([0.5 * torch.pi, 1.0 * torch.pi])),
                *torch.cos(torch.tensor([0.5 * torch.pi, 1.0 * torch.pi])),
            ]
        ]
    )
    assert features.shape == (1, 8) and torch.allclose(features, expected, atol=1e-6)


def test_grid_rows_follow_a_flattened_feature_map() -> None:
    h, w = 3, 4
    grid = grid_fourier_features(h, w, 1)  # (12, 4): sin x, cos x, sin y, cos y
    assert grid.shape == (h * w, 4)
    x = torch.arange(w).repeat(h)  # row-major: x runs fastest
    y = torch.arange(h).repeat_interleave(w)
    assert torch.allclose(grid[:, 0], torch.sin(torch.pi * (x + 0.5) / w), atol=1e-6)
    assert torch.allclose(grid[:, 2], torch.sin(torch.pi * (y + 0.5) / h), atol=1e-6)
