"""FID and KID against closed forms and their defining properties."""

import math

import pytest
import torch

from ldmkit.metrics.distribution_distance import (
    fid_from_features,
    frechet_distance,
    gaussian_statistics,
    kernel_inception_distance,
)


def test_frechet_distance_matches_the_closed_form_for_commuting_covariances() -> None:
    # Both covariances diagonal in the same rotated basis: the distance is
    # ||mu1 - mu2||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
    g = torch.Generator().manual_seed(0)
    rotation, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    a = torch.tensor([1.0, 4.0, 0.25, 9.0], dtype=torch.float64)
    b = torch.tensor([4.0, 1.0, 1.0, 2.25], dtype=torch.float64)
    sigma1 = rotation @ torch.diag(a) @ rotation.T
    sigma2 = rotation @ torch.diag(b) @ rotation.T
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0, 3.0]), torch.tensor([1.0, 1.0, 0.0, 3.0])
    expected = 5.0 + float(((a.sqrt() - b.sqrt()) ** 2).sum())
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_one_dimensional_gaussians() -> None:
    # W2^2 between N(m1, s1^2) and N(m2, s2^2) is (m1 - m2)^2 + (s1 - s2)^2.
    value = frechet_distance(
        torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]), torch.tensor([[9.0]])
    )
    assert value == pytest.approx(9.0 + 1.0)


def test_statistics_and_fid_of_samples() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20000, 3, generator=g) * torch.tensor([1.0, 2.0, 0.5]) + 3
    mu, sigma = gaussian_statistics(x)
    assert torch.allclose(mu, torch.full((3,), 3.0, dtype=torch.float64), atol=0.05)
    assert torch.allclose(sigma.diagonal(), torch.tensor([1.0, 4.0, 0.25]).double(), rtol=0.05)
    assert fid_from_features(x, x) == pytest.approx(0.0, abs=1e-8)
    shifted = x + torch.tensor([1.0, 0.0, 0.0])
    assert fid_from_features(x, shifted) == pytest.approx(1.0, rel=1e-6)


def test_fid_grows_with_added_noise() -> None:
    g = torch.Generator().manual_seed(2)
    real = torch.randn(2000, 8, generator=g) @ torch.randn(8, 8, generator=g)
    scores = [
        fid_from_features(real, real + noise * torch.randn(real.shape, generator=g))
        for noise in (0.0, 0.3, 1.0, 3.0)
    ]
    assert scores[0] == pytest.approx(0.0, abs=1e-8)
    assert scores == sorted(scores) and scores[-1] > 10 * scores[1]


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_when_shifted() -> None:
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(500, 16, generator=g), torch.randn(500, 16, generator=g)
    same, same_std = kernel_inception_distance(a, b, subsets=50, subset_size=200)
    assert abs(same) < 3 * same_std / math.sqrt(50) + 1e-3
    shifted, _ = kernel_inception_distance(a, b + 0.5, subsets=50, subset_size=200)
    assert shifted > 20 * max(abs(same), 1e-3)


def test_mismatched_features_are_a_clear_error() -> None:
    with pytest.raises(ValueError, match="same feature extractor"):
        fid_from_features(torch.randn(10, 3), torch.randn(10, 4))
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_statistics(torch.randn(1, 3))
