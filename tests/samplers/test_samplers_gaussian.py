"""Every sampler, driven by the exact denoiser of Gaussian data, reproduces that distribution."""

import pytest
import torch

from ldmkit.samplers import sample, sample_ddim, sample_ddpm, select_timesteps

CHUNK = 8000
# name, steps: step counts these samplers are run with (DDIM, first order, needs more).
CASES = [
    ("ddpm", 250),
    ("ddim", 100),
    ("plms", 50),
    ("dpm++2m", 20),
    ("dpm++2m-sde", 50),
    ("euler", 100),
    ("euler-a", 400),  # first order in its noise: 0.96 of the std at 100 steps
    ("heun", 30),
    ("unipc", 20),
]


def _z(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _start(gaussian, steps: int, z: torch.Tensor) -> torch.Tensor:
    # x_T from the true marginal at the first visited t: the linear schedule's alpha_bar_T is
    # not 0, so N(0, I) would bias every sampler by sqrt(alpha_bar_T) mu (Lin et al. 2024).
    return gaussian.marginal(select_timesteps(gaussian.schedule, steps)[0], z)


@pytest.mark.parametrize(("name", "steps"), CASES)
def test_sample_moments_match_the_data(gaussian, name: str, steps: int) -> None:
    torch.manual_seed(0)  # DDPM's per-step noise comes from the global RNG here
    # Chunks of 8000 x 4 stay under torch's parallel grain size, which keeps a busy 2-core
    # machine from thrashing; the samplers are batch-size independent, so chunking is free.
    chunks = [
        sample(
            name,
            gaussian.denoiser("eps"),
            (CHUNK, 4),
            gaussian.schedule,
            steps,
            initial_noise=_start(gaussian, steps, _z(CHUNK, seed)),
            dtype=torch.float64,
        )
        for seed in range(3)
    ]
    x0 = torch.cat(chunks)
    assert torch.allclose(x0.mean(0), gaussian.mu, atol=0.05), x0.mean(0)
    std_ratio = x0.std(0) / gaussian.s
    assert torch.allclose(std_ratio, torch.ones(4, dtype=torch.float64), atol=0.05), std_ratio


@pytest.mark.parametrize("name", ["ddim", "plms", "dpm++2m", "euler", "heun", "unipc"])
def test_deterministic_samplers_follow_the_exact_flow(gaussian, name: str) -> None:
    z = _z(500)
    errors = {}
    for steps in (20, 200):
        x0 = sample(
            name,
            gaussian.denoiser("eps"),
            z.shape,
            gaussian.schedule,
            steps,
            initial_noise=_start(gaussian, steps, z),
            dtype=torch.float64,
        )
        errors[steps] = (x0 - gaussian.flow(z)).abs().max().item()
    assert errors[200] < 0.05, errors
    assert errors[200] < errors[20] / 4, errors  # converges as the steps grow


def test_higher_order_samplers_beat_ddim_at_20_steps(gaussian) -> None:
    z = _z(500)
    start = _start(gaussian, 20, z)
    errors = {
        name: (
            sample(
                name,
                gaussian.denoiser(),
                z.shape,
                gaussian.schedule,
                20,
                initial_noise=start,
                dtype=torch.float64,
            )
            - gaussian.flow(z)
        )
        .abs()
        .max()
        for name in ("ddim", "plms", "dpm++2m", "unipc", "heun")
    }
    assert errors["dpm++2m"] < errors["ddim"] / 1.3, errors
    assert errors["unipc"] < errors["ddim"] / 1.3, errors
    assert errors["heun"] < errors["ddim"] / 1.3, errors
    assert errors["plms"] < errors["ddim"] / 1.3, errors


@pytest.mark.parametrize(("name", "steps"), CASES)
def test_eps_v_and_x0_models_give_the_same_samples(gaussian, name: str, steps: int) -> None:
    z = _z(64)
    results = []
    for prediction in ("eps", "v", "x0"):
        torch.manual_seed(1)
        results.append(
            sample(
                name,
                gaussian.denoiser(prediction),
                z.shape,
                gaussian.schedule,
                min(steps, 25),
                prediction=prediction,
                initial_noise=_start(gaussian, min(steps, 25), z),
                dtype=torch.float64,
            )
        )
    assert torch.allclose(results[0], results[1], atol=1e-8)
    assert torch.allclose(results[0], results[2], atol=1e-8)


def test_ddim_with_eta_one_is_ddpm(gaussian) -> None:
    # With sigma = sqrt(beta_tilde) the DDIM update is the DDPM posterior (Song et al. 2021).
    z = _z(64)
    kwargs = {"initial_noise": z, "dtype": torch.float64}
    generators = [torch.Generator().manual_seed(i) for i in range(64)]
    ddim = sample_ddim(
        gaussian.denoiser(),
        z.shape,
        gaussian.schedule,
        30,
        eta=1.0,
        generators=generators,
        **kwargs,
    )
    generators = [torch.Generator().manual_seed(i) for i in range(64)]
    ddpm = sample_ddpm(
        gaussian.denoiser(), z.shape, gaussian.schedule, 30, generators=generators, **kwargs
    )
    assert torch.allclose(ddim, ddpm, atol=1e-10)


@pytest.mark.parametrize(("name", "steps"), [("ddim", 200), ("euler", 200), ("dpm++2m", 50)])
def test_zero_terminal_snr_v_models_start_from_plain_noise(gaussian, name: str, steps: int):
    # With zero terminal SNR, x at t = T - 1 is pure noise: x_T ~ N(0, I) is exact, no bias
    # from the start (Lin et al. 2024); a v-model is defined there, "trailing" starts there.
    from dataclasses import replace

    from ldmkit.diffusion import rescale_zero_terminal_snr

    data = replace(gaussian, schedule=rescale_zero_terminal_snr(gaussian.schedule))
    x0 = sample(
        name,
        data.denoiser("v"),
        (CHUNK, 4),
        data.schedule,
        steps,
        prediction="v",
        spacing="trailing",
        initial_noise=_z(CHUNK),
        dtype=torch.float64,
    )
    assert torch.allclose(x0.mean(0), data.mu, atol=0.05), x0.mean(0)
    assert torch.allclose(x0.std(0) / data.s, torch.ones(4, dtype=torch.float64), atol=0.05)
