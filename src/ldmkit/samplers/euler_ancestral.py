"""Euler ancestral ("Euler a"): an Euler step down to sigma_down, then fresh noise of sigma_up,
with sigma_down^2 + sigma_up^2 = sigma_next^2 and sigma_up = eta sqrt(sigma_next^2 (sigma^2 -
sigma_next^2) / sigma^2), the ancestral (DDPM-like) split of k-diffusion and diffusers'
EulerAncestralDiscreteScheduler. A stochastic sampler: its samples depend on the seed's noise
at every step."""

import math
from collections.abc import Sequence

import torch

from ldmkit.diffusion import NoiseSchedule, Prediction
from ldmkit.diffusion.parameterization import check_prediction
from ldmkit.samplers.grid import StepGrid, step_grid
from ldmkit.samplers.noise import initial_latent, randn_per_sample
from ldmkit.samplers.sigma_space import denoised, from_sigma_space, to_sigma_space
from ldmkit.samplers.timesteps import Spacing
from ldmkit.samplers.types import Denoiser, StepCallback, stepping


def sample_euler_ancestral(
    denoise: Denoiser,
    shape: Sequence[int],
    schedule: NoiseSchedule,
    steps: int = 30,
    *,
    prediction: Prediction = "eps",
    eta: float = 1.0,
    spacing: Spacing = "linspace",
    grid: StepGrid | None = None,
    generators: Sequence[torch.Generator] | None = None,
    initial_noise: torch.Tensor | None = None,
    skip: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    show_progress: bool = False,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """x_0 by ancestral Euler steps from x_T ~ N(0, I) (one model call a step); `eta` scales
    the fresh noise (0: plain Euler). Each sample's noise comes from its generator."""
    check_prediction(prediction)
    if eta < 0.0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    grid = (grid or step_grid(schedule, steps, spacing, fractional=True)).skip(skip)
    point = grid.points[0]
    x_k = to_sigma_space(initial_latent(shape, generators, initial_noise, device, dtype), point)

    def current() -> torch.Tensor:  # x after the steps done so far, read when called
        return from_sigma_space(x_k, point)

    for here, following in stepping(grid.steps(), "Euler a", show_progress, callback, current):
        sigma, sigma_next = here.sigma, following.sigma
        sigma_up = min(
            sigma_next, eta * math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2)
        )
        sigma_down = math.sqrt(sigma_next**2 - sigma_up**2)
        derivative = (x_k - denoised(denoise, prediction, x_k, here)) / sigma
        x_k = x_k + derivative * (sigma_down - sigma)
        if sigma_up > 0.0:
            x_k = x_k + sigma_up * randn_per_sample(x_k.shape, generators, x_k.device, x_k.dtype)
        point = following
    return from_sigma_space(x_k, point)
