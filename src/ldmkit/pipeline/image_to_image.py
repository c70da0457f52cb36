"""Image-to-image (SDEdit, Meng et al. 2022): start the sampler from an image's latent noised
part of the way down its grid instead of from pure noise."""

from collections.abc import Sequence
from typing import Any

import torch

from ldmkit.diffusion import NoiseSchedule
from ldmkit.diffusion.schedule import broadcast_to
from ldmkit.samplers import SamplingOptions, randn_per_sample
from ldmkit.samplers.registry import grid_for


def noised_start(
    schedule: NoiseSchedule,
    z0: torch.Tensor,
    strength: float,
    options: SamplingOptions,
    generators: Sequence[torch.Generator],
) -> dict[str, Any]:
    """Sampler options that start from z0 noised `strength` of the way: the number of steps to
    skip and x at the first kept step's point of the sampler's grid (each sample's noise from
    its generator). Any sampler can start there."""
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must lie in (0, 1], got {strength}")
    steps = options.steps
    sampler_options = options.sampler_options()
    grid = grid_for(options.sampler, schedule, steps, **sampler_options)
    skip = steps - max(1, round(strength * steps))
    alpha_bar = torch.full((z0.shape[0],), grid.points[skip].alpha_bar, dtype=torch.float64)
    alpha_bar = broadcast_to(alpha_bar, z0)
    eps = randn_per_sample(z0.shape, generators, z0.device, z0.dtype)
    return {"initial_noise": alpha_bar.sqrt() * z0 + (1.0 - alpha_bar).sqrt() * eps, "skip": skip}
