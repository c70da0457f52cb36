"""The grid a sampler walks: spacings, Karras sigmas, steps_offset, the final point, explicit
timesteps, and the errors that name what is wrong."""

import itertools
import math

import pytest

from ldmkit.diffusion import linear_schedule
from ldmkit.samplers.grid import GridPoint, StepGrid, karras_sigmas, step_grid

SCHEDULE = linear_schedule(1000, 0.00085, 0.012)


def _sigma(alpha_bar: float) -> float:
    return math.sqrt((1.0 - alpha_bar) / alpha_bar)


def test_karras_sigmas_are_even_in_sigma_to_the_one_over_rho() -> None:
    sigmas = karras_sigmas(0.03, 14.6, 10)
    assert sigmas[0] == pytest.approx(14.6) and sigmas[-1] == pytest.approx(0.03)
    roots = [s ** (1 / 7) for s in sigmas]
    gaps = [a - b for a, b in itertools.pairwise(roots)]
    assert max(gaps) == pytest.approx(min(gaps), rel=1e-9)


@pytest.mark.parametrize("fractional", [False, True])
def test_karras_grid_spans_the_schedule_and_calls_the_model_at_each_sigmas_t(fractional):
    grid = step_grid(SCHEDULE, 12, karras=True, fractional=fractional)
    table = [_sigma(float(a)) for a in SCHEDULE.alpha_bar]
    assert grid.sigmas[0] == pytest.approx(table[-1]) and grid.sigmas[-2] == pytest.approx(table[0])
    assert grid.sigmas[-1] == 0.0 and grid.points[-1].is_clean
    assert grid.timesteps[0] == 999 and grid.timesteps[-1] == pytest.approx(0, abs=1e-9)
    assert all(isinstance(t, int) for t in grid.timesteps) != fractional
    # The model is called at the t whose sigma is the Karras sigma: found by interpolating
    # log sigma (diffusers' _sigma_to_t), read back linearly in sigma, so to 0.2%.
    for point in grid.points[1:-2]:
        t = point.t if fractional else None
        if t is not None:
            assert _sigma(float(SCHEDULE.alpha_bar_at(float(t)))) == pytest.approx(
                point.sigma, rel=2e-3
            )


def test_steps_offset_shifts_leading_timesteps_only() -> None:
    assert step_grid(SCHEDULE, 4, "leading", steps_offset=1).timesteps == [751, 501, 251, 1]
    assert step_grid(SCHEDULE, 4, "trailing", steps_offset=1).timesteps == [999, 749, 499, 249]
    with pytest.raises(ValueError, match="steps_offset 4 takes the first timestep to 10"):
        step_grid(linear_schedule(10), 3, "leading", steps_offset=4)


def test_final_sigma_min_ends_at_the_first_training_timestep() -> None:
    grid = step_grid(SCHEDULE, 4, "leading", steps_offset=1, final="sigma_min")
    assert grid.points[-1].alpha_bar == float(SCHEDULE.alpha_bar[0])
    # A grid that already visits t = 0 ends at clean data.
    assert step_grid(SCHEDULE, 4, "linspace", final="sigma_min").points[-1].is_clean
    with pytest.raises(ValueError, match="final must be one of zero, sigma_min"):
        step_grid(SCHEDULE, 4, final="one")  # type: ignore[arg-type]


def test_fractional_linspace_is_not_rounded() -> None:
    assert step_grid(SCHEDULE, 4, fractional=True).timesteps == [999.0, 666.0, 333.0, 0.0]
    assert step_grid(SCHEDULE, 3, fractional=True).timesteps == [999.0, 499.5, 0.0]
    assert step_grid(SCHEDULE, 3).timesteps == [999, 500, 0]


def test_explicit_timesteps_and_their_errors() -> None:
    grid = step_grid(SCHEDULE, 0, timesteps=[999, 500.5, 3])
    assert grid.timesteps == [999, 500.5, 3] and len(grid) == 3
    with pytest.raises(ValueError, match="timesteps must decrease"):
        step_grid(SCHEDULE, 0, timesteps=[10, 500])
    with pytest.raises(ValueError, match=r"timesteps must lie in \[0, 999\]"):
        step_grid(SCHEDULE, 0, timesteps=[1000, 5])
    with pytest.raises(ValueError, match="either timesteps or karras"):
        step_grid(SCHEDULE, 0, timesteps=[10, 5], karras=True)


def test_grids_check_their_points_and_skip() -> None:
    with pytest.raises(ValueError, match="alpha_bar must increase"):
        StepGrid((GridPoint(5, 0.5), GridPoint(3, 0.4), GridPoint(None, 1.0)))
    with pytest.raises(ValueError, match="every point but the last"):
        StepGrid((GridPoint(5, 0.5), GridPoint(3, 0.6)))
    grid = step_grid(SCHEDULE, 5)
    assert grid.skip(2).timesteps == grid.timesteps[2:]
    with pytest.raises(ValueError, match="skip must lie in"):
        grid.skip(5)
