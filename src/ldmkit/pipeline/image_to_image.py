"""Image-to-image (SDEdit, Meng et al. 2022): start the sampler from an image's latent noised
part of the way up the schedule instead of from pure noise."""

from collections.abc import Sequence
from typing import Any

import torch

from ldmkit.diffusion import NoiseSchedule, q_sample
from ldmkit.samplers import SamplingOptions, randn_per_sample
from ldmkit.samplers.timesteps import timestep_pairs

SAMPLERS = ("ddim", "ddpm")  # those that can start from a given x_t


def noised_start(
    schedule: NoiseSchedule,
    z0: torch.Tensor,
    strength: float,
    options: SamplingOptions,
    generators: Sequence[torch.Generator],
) -> dict[str, Any]:
    """Sampler options that start from z0 noised `strength` of the way: the number of steps to
    skip and x at the first kept step's timestep (each sample's noise from its generator)."""
    if options.sampler not in SAMPLERS:
        raise ValueError(f"image-to-image needs sampler ddim or ddpm, not {options.sampler!r}")
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must lie in (0, 1], got {strength}")
    steps = options.steps
    pairs = timestep_pairs(schedule, steps, options.spacing or "linspace")
    skip = steps - max(1, round(strength * steps))
    t = torch.full((z0.shape[0],), pairs[skip][0], device=z0.device)
    eps = randn_per_sample(z0.shape, generators, z0.device, z0.dtype)
    return {"initial_noise": q_sample(schedule, z0, t, eps), "skip": skip}
