"""The grid a sampler walks: the model's timestep and alpha_bar at each of its S steps, then
the point it ends at.

Every sampler reads its coefficients from these points and never from the schedule, so one
grid serves all of them and the conventions people know from other tools are settings here:

- `spacing` picks S of the T training timesteps (`timesteps.select_timesteps`); with
  `fractional` (the k-diffusion samplers' convention, diffusers' Euler and Heun) "linspace" is
  not rounded (a fractional t's alpha_bar is `NoiseSchedule.alpha_bar_at`'s).
- `steps_offset` shifts the "leading" timesteps up (Stable Diffusion ships 1; diffusers adds
  it to "leading" spacing only, as here).
- `karras` replaces the sigmas by those of Karras et al. 2022 (Eq. 5, rho = 7) between the
  schedule's smallest and largest sigma; each point's timestep is the t of its sigma
  (interpolated in log sigma), rounded unless `fractional`.
- `final` is where the last step lands: "zero" at clean data (alpha_bar = 1), "sigma_min" at
  the first training timestep's noise level (diffusers' `set_alpha_to_one=False`, the DDIM
  setting Stable Diffusion ships).
- `timesteps` gives the S timesteps outright (decreasing, integer or fractional).

Here sigma is the noise level of the variance-exploding form x / sqrt(alpha_bar) = x_0 + sigma
eps, sigma = sqrt((1 - alpha_bar) / alpha_bar), as in Karras et al. and k-diffusion.
"""

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from ldmkit.diffusion import NoiseSchedule
from ldmkit.samplers.timesteps import Spacing, select_timesteps

Final = Literal["zero", "sigma_min"]
FINALS: tuple[str, ...] = ("zero", "sigma_min")
KARRAS_RHO = 7.0


@dataclass(frozen=True)
class GridPoint:
    """A point of the grid: the model's timestep there (None at the end point, where no model
    is called) and alpha_bar, the signal fraction of x there (1 at clean data)."""

    t: int | float | None
    alpha_bar: float

    @property
    def sigma(self) -> float:
        """sqrt((1 - alpha_bar) / alpha_bar), 0 at clean data."""
        return math.sqrt((1.0 - self.alpha_bar) / self.alpha_bar)

    @property
    def log_snr_half(self) -> float:
        """lambda = log(alpha / sigma) = (log alpha_bar - log(1 - alpha_bar)) / 2, the time
        variable of the DPM-Solver family (Lu et al. 2022); infinite at clean data."""
        return 0.5 * (math.log(self.alpha_bar) - math.log1p(-self.alpha_bar))

    @property
    def is_clean(self) -> bool:
        """Whether this point is the clean data (alpha_bar = 1)."""
        return self.alpha_bar >= 1.0


@dataclass(frozen=True)
class StepGrid:
    """S + 1 points from the noisiest down: step i goes from points[i] to points[i + 1]."""

    points: tuple[GridPoint, ...]

    def __post_init__(self) -> None:
        if len(self.points) < 2:
            raise ValueError("a grid needs at least one step (two points)")
        if any(p.t is None for p in self.points[:-1]) or self.points[-1].t is not None:
            raise ValueError("every point but the last carries a timestep")
        alpha_bars = [p.alpha_bar for p in self.points]
        if any(not 0.0 < a <= 1.0 for a in alpha_bars) or any(
            later <= earlier for earlier, later in itertools.pairwise(alpha_bars)
        ):
            raise ValueError(f"alpha_bar must increase along the grid in (0, 1], got {alpha_bars}")

    def __len__(self) -> int:
        return len(self.points) - 1

    def steps(self) -> list[tuple[GridPoint, GridPoint]]:
        """(here, next) for each step."""
        return list(zip(self.points[:-1], self.points[1:], strict=True))

    @property
    def timesteps(self) -> list[int | float]:
        """The model's timestep at each step."""
        return [p.t for p in self.points[:-1] if p.t is not None]

    @property
    def sigmas(self) -> list[float]:
        """The S + 1 sigmas, the last 0 when the grid ends at clean data."""
        return [p.sigma for p in self.points]

    def skip(self, k: int) -> "StepGrid":
        """The grid after its first k steps (image-to-image starts part way down)."""
        if not 0 <= k < len(self):
            raise ValueError(
                f"skip must lie in [0, {len(self) - 1}] for {len(self)} steps, got {k}"
            )
        return StepGrid(self.points[k:])

    def __iter__(self) -> Iterator[GridPoint]:
        return iter(self.points)


def step_grid(
    schedule: NoiseSchedule,
    steps: int,
    spacing: Spacing = "linspace",
    *,
    karras: bool = False,
    steps_offset: int = 0,
    final: Final = "zero",
    fractional: bool = False,
    timesteps: Sequence[int | float] | None = None,
) -> StepGrid:
    """The grid of `steps` steps over `schedule` with the conventions the module names."""
    if final not in FINALS:
        raise ValueError(f"final must be one of {', '.join(FINALS)}, got {final!r}")
    if steps_offset < 0:
        raise ValueError(f"steps_offset must be >= 0, got {steps_offset}")
    table = schedule.alpha_bar
    last = schedule.num_timesteps - 1
    ts: list[int | float]
    if timesteps is not None:
        if karras:
            raise ValueError("give either timesteps or karras sigmas, not both")
        ts = _checked_timesteps(timesteps, last)
        alpha_bars = [_alpha_bar_at(schedule, t) for t in ts]
    elif karras:
        sigma_table = ((1.0 - table) / table).sqrt()
        sigmas = karras_sigmas(float(sigma_table[0]), float(sigma_table[-1]), steps)
        ts = [_t_of_sigma(sigma_table, s) for s in sigmas]
        ts = ts if fractional else [round(t) for t in ts]
        alpha_bars = [1.0 / (1.0 + s * s) for s in sigmas]
    else:
        ts = list(select_timesteps(schedule, steps, spacing))
        if fractional and spacing == "linspace" and steps > 1:
            ts = [i * last / (steps - 1) for i in range(steps)][::-1]
        if spacing == "leading" and steps_offset:
            ts = [t + steps_offset for t in ts]
            if ts[0] > last:
                raise ValueError(
                    f"steps_offset {steps_offset} takes the first timestep to {ts[0]}, past "
                    f"the schedule's last ({last}); lower it or the steps"
                )
        alpha_bars = [_alpha_bar_at(schedule, t) for t in ts]
    end = 1.0 if final == "zero" else float(table[0])
    # A grid that already reaches t = 0 (or its sigma, to rounding) ends at clean data: a
    # vanishing last step would divide by its length in the multistep solvers.
    if end <= alpha_bars[-1] * (1.0 + 1e-9):
        end = 1.0
    points = [GridPoint(t, a) for t, a in zip(ts, alpha_bars, strict=True)]
    return StepGrid((*points, GridPoint(None, end)))


def karras_sigmas(
    sigma_min: float, sigma_max: float, steps: int, rho: float = KARRAS_RHO
) -> list[float]:
    """`steps` sigmas from sigma_max down to sigma_min, even in sigma^(1/rho) (Karras et al.
    2022, Eq. 5)."""
    if not 0.0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    low, high = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    ramp = [i / (steps - 1) for i in range(steps)] if steps > 1 else [0.0]
    return [(high + r * (low - high)) ** rho for r in ramp]


def _checked_timesteps(timesteps: Sequence[int | float], last: int) -> list[int | float]:
    ts = list(timesteps)
    if not ts:
        raise ValueError("timesteps must not be empty")
    if any(not 0 <= t <= last for t in ts):
        raise ValueError(f"timesteps must lie in [0, {last}], got {ts}")
    if any(later >= earlier for earlier, later in itertools.pairwise(ts)):
        raise ValueError(f"timesteps must decrease, got {ts}")
    return [t if isinstance(t, int) else float(t) for t in ts]


def _alpha_bar_at(schedule: NoiseSchedule, t: int | float) -> float:
    """alpha_bar at an integer t (the table) or a fractional one (`NoiseSchedule.alpha_bar_at`:
    sigma interpolated linearly, as diffusers' Euler and Heun do)."""
    if isinstance(t, int) or float(t).is_integer():
        return float(schedule.alpha_bar[int(t)])
    return float(schedule.alpha_bar_at(float(t)))


def _t_of_sigma(sigma_table: torch.Tensor, sigma: float) -> float:
    """The fractional t whose sigma is `sigma`, interpolating log sigma between neighbours."""
    log_table = sigma_table.log()
    log_sigma = math.log(max(sigma, 1e-10))
    high = int(torch.searchsorted(log_table, torch.tensor(log_sigma, dtype=log_table.dtype)))
    high = min(max(high, 1), log_table.numel() - 1)
    low = high - 1
    lo, hi = float(log_table[low]), float(log_table[high])
    weight = min(max((log_sigma - lo) / (hi - lo), 0.0), 1.0)
    return low + weight
