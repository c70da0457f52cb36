"""Cross-check against diffusers' schedulers on identical timesteps (an independent code base)."""

import pytest
import torch

from ldmkit.samplers import sample, select_timesteps
from ldmkit.samplers.grid import GridPoint, StepGrid, step_grid

diffusers = pytest.importorskip("diffusers")

# diffusers' "scaled_linear" is LDM's linear-in-sqrt(beta) schedule.
SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
}


def _run(scheduler, denoise, x: torch.Tensor, noises=None) -> torch.Tensor:
    for i, t in enumerate(scheduler.timesteps):
        t_batch = torch.full((x.shape[0],), int(t))
        extra = {} if noises is None else {"variance_noise": noises[i]}
        x = scheduler.step(denoise(x, t_batch), t, x, **extra).prev_sample
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


def _run_sigma_space(scheduler, denoise, x_T: torch.Tensor) -> torch.Tensor:
    # Started from x_T scaled to the first sigma exactly (diffusers' init_noise_sigma is
    # sigma_max, not sqrt(sigma_max^2 + 1), for "linspace" and "trailing").
    x = x_T * (scheduler.sigmas[0].double() ** 2 + 1).sqrt()
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(x, t)
        t_batch = torch.full((x.shape[0],), float(t), dtype=torch.float32)
        x = scheduler.step(denoise(model_input, t_batch), t, x).prev_sample
    return x


def _x_T() -> torch.Tensor:
    return torch.randn(64, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize("karras", [False, True])
@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("name", ["euler", "heun"])
def test_euler_and_heun_match_diffusers(gaussian, name: str, prediction: str, karras: bool) -> None:
    kind = {"euler": diffusers.EulerDiscreteScheduler, "heun": diffusers.HeunDiscreteScheduler}
    scheduler = kind[name](
        **SCHEDULE,
        prediction_type={"eps": "epsilon", "v": "v_prediction"}[prediction],
        use_karras_sigmas=karras,
    )
    scheduler.set_timesteps(15)
    theirs = _run_sigma_space(scheduler, gaussian.denoiser(prediction), _x_T())
    ours = sample(
        name,
        gaussian.denoiser(prediction),
        (64, 4),
        gaussian.schedule,
        15,
        prediction=prediction,
        karras=karras,
        initial_noise=_x_T(),
        dtype=torch.float64,
    )
    assert (ours - theirs).abs().max() < 1e-5


def test_dpmpp_2m_karras_matches_diffusers(gaussian) -> None:
    scheduler = diffusers.DPMSolverMultistepScheduler(
        **SCHEDULE, use_karras_sigmas=True, lower_order_final=False, final_sigmas_type="zero"
    )
    scheduler.set_timesteps(20)
    grid = step_grid(gaussian.schedule, 20, karras=True)
    assert grid.timesteps == [int(t) for t in scheduler.timesteps]  # Karras t, rounded
    theirs_sigmas = scheduler.sigmas.double()
    # diffusers' alpha_bar table is float32: its sigmas stray 1.3e-5 relative from float64's.
    assert torch.allclose(
        torch.tensor(grid.sigmas, dtype=torch.float64), theirs_sigmas, rtol=2e-5, atol=0
    )
    theirs = _run(scheduler, gaussian.denoiser(), _x_T())
    ours = sample(
        "dpm++2m",
        gaussian.denoiser(),
        (64, 4),
        gaussian.schedule,
        20,
        karras=True,
        initial_noise=_x_T(),
        dtype=torch.float64,
    )
    assert (ours - theirs).abs().max() < 5e-5
    # On their float32 sigmas the step maths agree to float64 rounding of those.
    points = [GridPoint(p.t, 1.0 / (1.0 + float(s) ** 2)) for p, s in zip(grid, theirs_sigmas)]  # noqa: B905
    same_sigmas = StepGrid((*points[:-1], GridPoint(None, 1.0)))
    ours = sample(
        "dpm++2m",
        gaussian.denoiser(),
        (64, 4),
        gaussian.schedule,
        grid=same_sigmas,
        initial_noise=_x_T(),
        dtype=torch.float64,
    )
    assert (ours - theirs).abs().max() < 1e-5


def test_ddim_with_stable_diffusions_settings_matches_diffusers(gaussian) -> None:
    # Stable Diffusion's scheduler config: steps_offset=1, set_alpha_to_one=False, "leading".
    scheduler = diffusers.DDIMScheduler(
        **SCHEDULE,
        timestep_spacing="leading",
        steps_offset=1,
        set_alpha_to_one=False,
        clip_sample=False,
    )
    scheduler.set_timesteps(25)
    theirs = _run(scheduler, gaussian.denoiser(), _x_T())
    ours = sample(
        "ddim",
        gaussian.denoiser(),
        (64, 4),
        gaussian.schedule,
        25,
        spacing="leading",
        steps_offset=1,
        final="sigma_min",
        initial_noise=_x_T(),
        dtype=torch.float64,
    )
    assert (ours - theirs).abs().max() < 1e-5


def test_euler_ancestral_matches_diffusers_on_the_same_noise(gaussian) -> None:
    # Both draw each step's noise from the global RNG in one (B, ...) call: same seed, same noise.
    scheduler = diffusers.EulerAncestralDiscreteScheduler(**SCHEDULE)
    scheduler.set_timesteps(15)
    torch.manual_seed(3)
    theirs = _run_sigma_space(scheduler, gaussian.denoiser(), _x_T())
    torch.manual_seed(3)
    ours = sample(
        "euler-a",
        gaussian.denoiser(),
        (64, 4),
        gaussian.schedule,
        15,
        initial_noise=_x_T(),
        dtype=torch.float64,
    )
    assert (ours - theirs).abs().max() < 1e-5


@pytest.mark.parametrize("karras", [False, True])
def test_dpmpp_2m_sde_matches_diffusers_on_the_same_noise(gaussian, karras: bool) -> None:
    scheduler = diffusers.DPMSolverMultistepScheduler(
        **SCHEDULE,
        algorithm_type="sde-dpmsolver++",
        use_karras_sigmas=karras,
        lower_order_final=False,
        final_sigmas_type="zero",
    )
    if karras:
        scheduler.set_timesteps(20)
    else:
        scheduler.set_timesteps(timesteps=select_timesteps(gaussian.schedule, 20, "logsnr"))
    # ldmkit draws sample i's noise from generators[i], one row a step (in float32): hand
    # diffusers the same rows as its variance_noise.
    generators = [torch.Generator().manual_seed(100 + i) for i in range(64)]
    noises = [torch.stack([torch.randn(4, generator=g) for g in generators]) for _ in range(20)]
    theirs = _run(scheduler, gaussian.denoiser(), _x_T(), noises)
    ours = sample(
        "dpm++2m-sde",
        gaussian.denoiser(),
        (64, 4),
        gaussian.schedule,
        20,
        karras=karras,
        initial_noise=_x_T(),
        generators=[torch.Generator().manual_seed(100 + i) for i in range(64)],
        dtype=torch.float64,
    )
    # Karras: diffusers' float32 alpha_bar table moves its sigmas 1.3e-5 (see above).
    assert (ours - theirs).abs().max() < (5e-5 if karras else 1e-5)


@pytest.mark.parametrize("karras", [False, True])
@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_unipc_matches_diffusers(gaussian, prediction: str, karras: bool) -> None:
    # diffusers' defaults: bh2, order 2, lower order at the end, corrector on every step.
    scheduler = diffusers.UniPCMultistepScheduler(
        **SCHEDULE,
        prediction_type={"eps": "epsilon", "v": "v_prediction"}[prediction],
        use_karras_sigmas=karras,
    )
    scheduler.set_timesteps(12)
    theirs = _run(scheduler, gaussian.denoiser(prediction), _x_T())
    timesteps = {} if karras else {"timesteps": [int(t) for t in scheduler.timesteps]}
    ours = sample(
        "unipc",
        gaussian.denoiser(prediction),
        (64, 4),
        gaussian.schedule,
        12,
        prediction=prediction,
        karras=karras,
        initial_noise=_x_T(),
        dtype=torch.float64,
        **timesteps,
    )
    assert (ours - theirs).abs().max() < (5e-5 if karras else 1e-5)
