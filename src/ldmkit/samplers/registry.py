"""Samplers by name, and one `sample` entry point that dispatches to them."""

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ldmkit.diffusion import NoiseSchedule
from ldmkit.samplers.ddim import sample_ddim
from ldmkit.samplers.ddpm import sample_ddpm
from ldmkit.samplers.dpm_solver import sample_dpmpp_2m
from ldmkit.samplers.plms import sample_plms
from ldmkit.samplers.types import Denoiser

SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "plms": sample_plms,
    "dpm++2m": sample_dpmpp_2m,
}


def sampler_parameters(name: str) -> tuple[str, ...]:
    """The keyword-only options of the sampler called `name`."""
    parameters = inspect.signature(SAMPLERS[name]).parameters.values()
    return tuple(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)


def sample(
    name: str,
    denoise: Denoiser,
    shape: Sequence[int],
    schedule: NoiseSchedule,
    steps: int | None = None,
    **options: Any,
) -> torch.Tensor:
    """x_0 from the sampler called `name`; `options` are that sampler's keyword arguments."""
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
    if steps is None:
        steps = parameters["steps"].default  # the sampler's own default
    return sampler(denoise, shape, schedule, steps, **options)
