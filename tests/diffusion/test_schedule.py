"""Noise schedules: LDM's sqrt-linear betas, DDPM's plain linear ones, the cosine schedule,
lookups and broadcasting."""

import math

import pytest
import torch

from ldmkit.diffusion import (
    NoiseSchedule,
    ScheduleConfig,
    beta_linear_schedule,
    broadcast_to,
    build_schedule,
    cosine_schedule,
    linear_schedule,
)


def test_linear_schedule_endpoints_and_sqrt_linear_shape() -> None:
    schedule = linear_schedule(1000, 0.00085, 0.012)
    betas = schedule.betas
    assert betas.dtype == torch.float64 and betas.shape == (1000,)
    assert betas[0].item() == pytest.approx(0.00085, rel=1e-12)
    assert betas[-1].item() == pytest.approx(0.012, rel=1e-12)
    steps = betas.sqrt().diff()  # linear in sqrt(beta): constant increments
    assert torch.allclose(steps, steps.mean().expand_as(steps), rtol=1e-9, atol=0)
    assert not torch.allclose(betas.diff(), betas.diff().mean().expand(999), rtol=1e-3)


def test_linear_schedule_golden_alpha_bar() -> None:
    # Stable Diffusion's schedule (0.00085..0.012) ends at sqrt(alpha_bar_999) = 0.068265
    # (the terminal signal level quoted by Lin et al. 2024).
    alpha_bar = linear_schedule().alpha_bar
    assert alpha_bar[-1].sqrt().item() == pytest.approx(0.068265, abs=1e-6)
    assert alpha_bar[0].item() == pytest.approx(1 - 0.00085, rel=1e-12)


def test_alpha_bar_is_the_product_of_alphas_and_decreasing() -> None:
    for schedule in (linear_schedule(100, 0.0015, 0.0195), cosine_schedule(100)):
        assert torch.allclose(schedule.alphas, 1 - schedule.betas, rtol=0, atol=0)
        assert torch.allclose(schedule.alpha_bar, torch.cumprod(schedule.alphas, 0), rtol=1e-14)
        assert bool((schedule.alpha_bar.diff() < 0).all())
        assert bool((schedule.alpha_bar > 0).all()) and bool((schedule.alpha_bar < 1).all())


def test_cosine_schedule_matches_the_closed_form_and_clips() -> None:
    T, s = 1000, 0.008
    schedule = cosine_schedule(T, s)

    def f(t: float) -> float:
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    for t in (0, 10, 500, 900):
        # alpha_bar_t covers t + 1 forward steps: f(t + 1) / f(0), as long as nothing is clipped.
        assert schedule.alpha_bar[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-10)
    assert schedule.betas.max().item() == pytest.approx(0.999)
    assert schedule.betas[-1].item() == pytest.approx(0.999)  # f(T) = 0 would give beta = 1


def test_build_schedule_dispatches_on_kind() -> None:
    linear = build_schedule(ScheduleConfig("linear", 50, 0.0015, 0.0195))
    assert torch.equal(linear.betas, linear_schedule(50, 0.0015, 0.0195).betas)
    cosine = build_schedule(ScheduleConfig("cosine", 50, cosine_s=0.01))
    assert torch.equal(cosine.betas, cosine_schedule(50, 0.01).betas)


def test_beta_linear_schedule_is_linear_in_beta() -> None:
    schedule = build_schedule(ScheduleConfig("beta_linear", 1000, 0.0001, 0.02))
    assert torch.equal(schedule.betas, beta_linear_schedule(1000, 0.0001, 0.02).betas)
    betas = schedule.betas
    assert betas.dtype == torch.float64 and (betas[0].item(), betas[-1].item()) == (0.0001, 0.02)
    steps = betas.diff()  # linear in beta: constant increments (LDM's are linear in sqrt(beta))
    assert torch.allclose(steps, steps.mean().expand_as(steps), rtol=1e-9, atol=0)
    assert not torch.allclose(betas, linear_schedule(1000, 0.0001, 0.02).betas, rtol=1e-2)


def test_beta_linear_schedule_matches_diffusers_linear() -> None:
    diffusers = pytest.importorskip("diffusers")
    for start, end, steps in ((0.0001, 0.02, 1000), (0.0015, 0.0195, 500)):
        theirs = diffusers.DDPMScheduler(
            num_train_timesteps=steps, beta_start=start, beta_end=end, beta_schedule="linear"
        )
        ours = build_schedule(ScheduleConfig("beta_linear", steps, start, end))
        torch.testing.assert_close(ours.betas.float(), theirs.betas, rtol=1e-6, atol=0)
        # theirs is float32 throughout (linspace and cumprod), ours float64.
        torch.testing.assert_close(
            ours.alpha_bar.float(), theirs.alphas_cumprod, rtol=1e-5, atol=1e-7
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "quadratic"}, "not one of linear, cosine"),
        ({"num_timesteps": 0}, "num_timesteps"),
        ({"beta_start": 0.02, "beta_end": 0.01}, "beta_start <= beta_end"),
    ],
)
def test_schedule_config_rejects_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScheduleConfig(**kwargs)


def test_noise_schedule_rejects_betas_outside_unit_interval() -> None:
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        NoiseSchedule(torch.tensor([0.1, 1.0]))


def test_snr_sigma_and_lookups() -> None:
    schedule = linear_schedule(100)
    t = torch.tensor([0, 37, 99])
    alpha_bar = schedule.alpha_bar[t]
    assert torch.equal(schedule.alpha_bar_at(t), alpha_bar)
    assert torch.allclose(schedule.sigma(t), (1 - alpha_bar).sqrt(), rtol=1e-14)
    assert torch.allclose(schedule.sqrt_alpha_bar(t), alpha_bar.sqrt(), rtol=1e-14)
    assert torch.allclose(schedule.snr(t), alpha_bar / (1 - alpha_bar), rtol=1e-14)
    assert torch.allclose(schedule.log_snr(t), schedule.snr(t).log(), rtol=1e-12)
    assert schedule.alpha_bar_at(37).item() == alpha_bar[1].item()  # Python ints work too
    with pytest.raises(ValueError, match=r"\[0, 99\]"):
        schedule.alpha_bar_at(torch.tensor([100]))


def test_fractional_timesteps_interpolate_sigma() -> None:
    schedule = linear_schedule(100)
    assert schedule.alpha_bar_at(20.0).item() == pytest.approx(schedule.alpha_bar[20].item())
    half = schedule.alpha_bar_at(torch.tensor([20.5])).item()

    def sigma(a: float) -> float:
        return math.sqrt((1.0 - a) / a)

    expected = (sigma(schedule.alpha_bar[20].item()) + sigma(schedule.alpha_bar[21].item())) / 2
    assert sigma(half) == pytest.approx(expected, rel=1e-12)


def test_broadcast_to_shapes_and_dtype() -> None:
    x = torch.zeros(3, 4, 5, 6, dtype=torch.float16)
    coefficient = broadcast_to(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), x)
    assert coefficient.shape == (3, 1, 1, 1) and coefficient.dtype == torch.float16
    assert broadcast_to(torch.tensor(2.0), x).shape == ()
    with pytest.raises(ValueError, match="batch of 3"):
        broadcast_to(torch.ones(2), x)


def test_zero_terminal_snr_keeps_the_start_and_ends_at_pure_noise() -> None:
    from ldmkit.diffusion import ScheduleConfig, build_schedule, rescale_zero_terminal_snr
    from ldmkit.diffusion.schedule import ZERO_SNR_ALPHA_BAR

    plain = linear_schedule()
    rescaled = rescale_zero_terminal_snr(plain)
    assert rescaled.alpha_bar[0].item() == pytest.approx(plain.alpha_bar[0].item(), rel=1e-12)
    assert rescaled.alpha_bar[-1].item() == pytest.approx(ZERO_SNR_ALPHA_BAR, rel=1e-9)
    # sqrt(alpha_bar) is an affine map of the original's (Lin et al. 2024, Algorithm 1).
    a, b = plain.alpha_bar.sqrt()[:-1], rescaled.alpha_bar.sqrt()[:-1]
    slope = (b[0] - b[500]) / (a[0] - a[500])
    assert torch.allclose(b, b[0] + slope * (a - a[0]), atol=1e-9)
    assert build_schedule(ScheduleConfig(zero_terminal_snr=True)).alpha_bar.equal(
        rescaled.alpha_bar
    )
    with pytest.raises(ValueError, match=r"steps_offset must lie in \[0, 999\], got 1000"):
        ScheduleConfig(steps_offset=1000)


def test_zero_terminal_snr_matches_diffusers() -> None:
    diffusers = pytest.importorskip("diffusers")
    from ldmkit.diffusion import rescale_zero_terminal_snr

    theirs = diffusers.DDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        rescale_betas_zero_snr=True,
    ).alphas_cumprod.double()
    ours = rescale_zero_terminal_snr(linear_schedule()).alpha_bar
    assert torch.allclose(ours[:-1], theirs[:-1], rtol=1e-5, atol=1e-7)  # theirs is float32
