"""Cross-check against diffusers' schedulers on identical timesteps (an independent code base)."""

import pytest
import torch

from ldmkit.samplers import sample, select_timesteps

diffusers = pytest.importorskip("diffusers")

# diffusers' "scaled_linear" is LDM's linear-in-sqrt(beta) schedule.
SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
}


def _run(scheduler, denoise, x: torch.Tensor) -> torch.Tensor:
    for t in scheduler.timesteps:
        t_batch = torch.full((x.shape[0],), int(t))
        x = scheduler.step(denoise(x, t_batch), t, x).prev_sample
    return x


@pytest.mark.parametrize("spacing", ["linspace", "logsnr"])
def test_dpmpp_2m_matches_diffusers(gaussian, spacing: str) -> None:
    ts = select_timesteps(gaussian.schedule, 20, spacing)
    scheduler = diffusers.DPMSolverMultistepScheduler(
        **SCHEDULE,
        algorithm_type="dpmsolver++",
        solver_order=2,
        lower_order_final=False,
        final_sigmas_type="zero",
    )
    scheduler.set_timesteps(timesteps=ts)
    x_T = torch.randn(64, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    theirs = _run(scheduler, gaussian.denoiser(), x_T)
    ours = sample(
        "dpm++2m",
        gaussian.denoiser(),
        x_T.shape,
        gaussian.schedule,
        20,
        spacing=spacing,
        initial_noise=x_T,
        dtype=torch.float64,
    )
    assert torch.allclose(ours, theirs, atol=1e-4)  # diffusers keeps its sigmas in float32


def test_ddim_matches_diffusers(gaussian) -> None:
    # diffusers steps from t to t - T // S, which is our "leading" spacing.
    scheduler = diffusers.DDIMScheduler(
        **SCHEDULE, timestep_spacing="leading", set_alpha_to_one=True, clip_sample=False
    )
    scheduler.set_timesteps(25)
    assert [int(t) for t in scheduler.timesteps] == select_timesteps(
        gaussian.schedule, 25, "leading"
    )
    x_T = torch.randn(64, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    theirs = _run(scheduler, gaussian.denoiser(), x_T)
    ours = sample(
        "ddim",
        gaussian.denoiser(),
        x_T.shape,
        gaussian.schedule,
        25,
        spacing="leading",
        initial_noise=x_T,
        dtype=torch.float64,
    )
    assert torch.allclose(ours, theirs, atol=1e-4)
