"""Timestep spacings and the sampler registry."""

import inspect
import itertools

import pytest
import torch

from ldmkit.diffusion import cosine_schedule, linear_schedule
from ldmkit.samplers import SAMPLERS, sample, sample_ddim, select_timesteps
from ldmkit.samplers.grid import step_grid
from ldmkit.samplers.registry import FRACTIONAL
from ldmkit.samplers.timesteps import SPACINGS


def test_spacings_for_50_of_1000() -> None:
    schedule = linear_schedule()
    leading = select_timesteps(schedule, 50, "leading")
    assert leading[:2] == [980, 960] and leading[-1] == 0
    trailing = select_timesteps(schedule, 50, "trailing")
    assert trailing[:2] == [999, 979] and trailing[-1] == 19
    linspace = select_timesteps(schedule, 50, "linspace")
    assert linspace[0] == 999 and linspace[-1] == 0
    logsnr = select_timesteps(schedule, 50, "logsnr")
    assert logsnr[0] == 999 and logsnr[-1] == 0
    lam = 0.5 * schedule.log_snr(torch.tensor(logsnr[:20]))  # even in lambda while t is coarse
    assert torch.allclose(lam.diff(), lam.diff().mean().expand(19), rtol=0.1)


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("steps", [1, 7, 50, 333, 999, 1000])
def test_spacings_are_distinct_decreasing_and_in_range(spacing: str, steps: int) -> None:
    for schedule in (linear_schedule(), cosine_schedule()):
        ts = select_timesteps(schedule, steps, spacing)  # type: ignore[arg-type]
        assert len(ts) == steps
        assert all(a > b for a, b in itertools.pairwise(ts))
        assert ts[-1] >= 0 and ts[0] <= 999
        if steps == 1000:
            assert ts == list(range(999, -1, -1))


def test_grids_end_at_clean_data_and_bad_inputs_fail() -> None:
    schedule = linear_schedule(10)
    grid = step_grid(schedule, 3, "leading")
    assert [p.t for p in grid] == [6, 3, 0, None]
    assert grid.points[-1].alpha_bar == 1.0 and grid.sigmas[-1] == 0.0
    with pytest.raises(ValueError, match=r"\[1, 10\]"):
        select_timesteps(schedule, 11)
    with pytest.raises(ValueError, match="not one of"):
        select_timesteps(schedule, 3, "uniform")  # type: ignore[arg-type]


def test_registry_dispatches_and_reports_bad_names(gaussian) -> None:
    assert set(SAMPLERS) >= {"ddpm", "ddim", "plms", "dpm++2m", "euler", "euler-a", "heun"}
    noise = torch.randn(4, 4)
    direct = sample_ddim(gaussian.denoiser(), (4, 4), gaussian.schedule, 7, initial_noise=noise)
    via = sample("ddim", gaussian.denoiser(), (4, 4), gaussian.schedule, 7, initial_noise=noise)
    assert torch.equal(direct, via)
    with pytest.raises(ValueError, match="unknown sampler 'lms'; valid names: ddpm, ddim"):
        sample("lms", gaussian.denoiser(), (4, 4), gaussian.schedule, 7)
    with pytest.raises(ValueError, match="has no option 'eta'; valid options: prediction"):
        sample("plms", gaussian.denoiser(), (4, 4), gaussian.schedule, 7, eta=0.5)


def test_samplers_reject_wrong_model_output_shapes(gaussian) -> None:
    with pytest.raises(ValueError, match="denoiser returned shape"):
        sample("dpm++2m", lambda x, t: x[:, :2], (4, 4), gaussian.schedule, 3)
    with pytest.raises(ValueError, match="eps, v, x0"):
        sample("ddpm", gaussian.denoiser(), (4, 4), gaussian.schedule, 3, prediction="score")


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_skip_starts_part_way_down_from_the_given_latent(name: str) -> None:
    schedule = linear_schedule()
    seen: list[float] = []

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append(float(t[0]))
        return torch.zeros_like(x)

    start = torch.randn(1, 2, 4, 4)
    sample(name, denoise, (1, 2, 4, 4), schedule, 5, skip=2, initial_noise=start)
    spacing = inspect.signature(SAMPLERS[name]).parameters["spacing"].default
    grid = step_grid(schedule, 5, spacing, fractional=name in FRACTIONAL)
    assert sorted(set(seen), reverse=True) == grid.timesteps[2:]
    with pytest.raises(ValueError, match="skip must lie"):
        sample(name, denoise, (1, 2, 4, 4), schedule, 5, skip=5)
