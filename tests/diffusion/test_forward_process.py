"""q(x_t | x_0): moments of q_sample, training timesteps, offset noise."""

import pytest
import torch

from ldmkit.diffusion import linear_schedule, offset_noise, q_sample, sample_timesteps


def test_q_sample_has_the_marginal_moments() -> None:
    schedule = linear_schedule()
    generator = torch.Generator().manual_seed(0)
    n = 200_000
    x0 = torch.full((n, 1), 2.0, dtype=torch.float64)
    eps = torch.randn(n, 1, generator=generator, dtype=torch.float64)
    for t in (0, 500, 999):
        x_t = q_sample(schedule, x0, torch.full((n,), t), eps)
        alpha_bar = schedule.alpha_bar[t].item()
        assert x_t.mean().item() == pytest.approx(2.0 * alpha_bar**0.5, abs=0.01)
        assert x_t.std().item() == pytest.approx((1 - alpha_bar) ** 0.5, rel=0.01)


def test_q_sample_uses_each_samples_timestep() -> None:
    schedule = linear_schedule()
    x0, eps = torch.ones(2, 3, 2, 2), torch.zeros(2, 3, 2, 2)
    x_t = q_sample(schedule, x0, torch.tensor([0, 999]), eps)
    assert torch.allclose(x_t[0], schedule.alpha_bar[0].sqrt().float().expand(3, 2, 2))
    assert torch.allclose(x_t[1], schedule.alpha_bar[999].sqrt().float().expand(3, 2, 2))


def test_sample_timesteps_in_range() -> None:
    t = sample_timesteps(10_000, linear_schedule(), torch.Generator().manual_seed(0))
    assert t.dtype == torch.int64 and t.min() == 0 and t.max() == 999


def test_offset_noise() -> None:
    plain = offset_noise((4, 3, 8, 8), 0.0, torch.Generator().manual_seed(1))
    assert torch.equal(plain, torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1)))
    noise = offset_noise((2000, 3, 8, 8), 0.5, torch.Generator().manual_seed(1))
    channel_means = noise.mean(dim=(2, 3))  # var = 1/64 + 0.25
    assert channel_means.var().item() == pytest.approx(1 / 64 + 0.25, rel=0.05)
    with pytest.raises(ValueError, match=">= 0"):
        offset_noise((2, 3), -1.0)
