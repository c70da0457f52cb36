"""Samplers by name, and one `sample` entry point that dispatches to them and builds their grid
from the conventions asked for (Karras sigmas, steps_offset, final point, explicit timesteps)."""

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ldmkit.diffusion import NoiseSchedule
from ldmkit.samplers.ddim import sample_ddim
from ldmkit.samplers.ddpm import sample_ddpm
from ldmkit.samplers.dpm_solver import sample_dpmpp_2m
from ldmkit.samplers.dpm_solver_sde import sample_dpmpp_2m_sde
from ldmkit.samplers.euler import sample_euler
from ldmkit.samplers.euler_ancestral import sample_euler_ancestral
from ldmkit.samplers.grid import StepGrid, step_grid
from ldmkit.samplers.heun import sample_heun
from ldmkit.samplers.plms import sample_plms
from ldmkit.samplers.timesteps import Spacing
from ldmkit.samplers.types import Denoiser
from ldmkit.samplers.unipc import sample_unipc

SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "plms": sample_plms,
    "dpm++2m": sample_dpmpp_2m,
    "dpm++2m-sde": sample_dpmpp_2m_sde,
    "euler": sample_euler,
    "euler-a": sample_euler_ancestral,
    "heun": sample_heun,
    "unipc": sample_unipc,
}
# Samplers whose grid keeps fractional timesteps (k-diffusion's and diffusers' convention for
# them); the others call the model at integer timesteps only, rounding Karras sigmas' t.
FRACTIONAL = ("euler", "euler-a", "heun")
# The samplers that a schedule's `set_alpha_to_one = False` ends at the first training
# timestep ("sigma_min"): DDIM and PLMS, as in CompVis' code and diffusers' DDIM and PNDM.
END_AT_ALPHA = ("ddim", "plms")
# Options that shape the grid rather than the sampler: `sample` turns them into `grid=`.
GRID_OPTIONS = ("karras", "steps_offset", "final", "timesteps")


def sampler_parameters(name: str) -> tuple[str, ...]:
    """The keyword-only options of the sampler called `name`, with the grid's."""
    parameters = inspect.signature(SAMPLERS[name]).parameters.values()
    own = tuple(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)
    return (*own, *GRID_OPTIONS)


def sample(
    name: str,
    denoise: Denoiser,
    shape: Sequence[int],
    schedule: NoiseSchedule,
    steps: int | None = None,
    **options: Any,
) -> torch.Tensor:
    """x_0 from the sampler called `name`; `options` are that sampler's keyword arguments and
    the grid conventions of `step_grid` (karras, steps_offset, final, timesteps)."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; valid names: {', '.join(SAMPLERS)}")
    sampler = SAMPLERS[name]
    parameters = inspect.signature(sampler).parameters
    valid = sampler_parameters(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"sampler {name!r} has no option {unknown[0]!r}; valid options: {', '.join(valid)}"
        )
    conventions = {key: options.pop(key) for key in GRID_OPTIONS if key in options}
    if conventions.get("timesteps") is not None:
        steps = len(conventions["timesteps"])
    if steps is None:
        steps = parameters["steps"].default or schedule.num_timesteps  # the sampler's default
    if any(value not in (None, False, 0, "zero") for value in conventions.values()):
        if "grid" in options:
            raise ValueError("give either grid or the grid options (karras, steps_offset, ...)")
        options["grid"] = grid_for(
            name, schedule, steps, spacing=options.pop("spacing", None), **conventions
        )
    return sampler(denoise, shape, schedule, steps, **options)


def grid_for(
    name: str,
    schedule: NoiseSchedule,
    steps: int,
    spacing: Spacing | None = None,
    **conventions: Any,
) -> StepGrid:
    """The grid the sampler called `name` walks for these options (its own default spacing
    where `spacing` is None); `conventions` are `step_grid`'s (karras, steps_offset, final,
    timesteps), None meaning the default."""
    if spacing is None:
        spacing = inspect.signature(SAMPLERS[name]).parameters["spacing"].default
    chosen = {k: v for k, v in conventions.items() if k in GRID_OPTIONS and v is not None}
    return step_grid(schedule, steps, spacing, fractional=name in FRACTIONAL, **chosen)
