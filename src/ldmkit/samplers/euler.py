"""Euler's method on the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma (Karras et
al. 2022, Algorithm 1 without churn; "Euler" in k-diffusion, diffusers and the web UIs)."""

from collections.abc import Sequence

import torch

from ldmkit.diffusion import NoiseSchedule, Prediction
from ldmkit.diffusion.parameterization import check_prediction
from ldmkit.samplers.grid import StepGrid, step_grid
from ldmkit.samplers.noise import initial_latent
from ldmkit.samplers.sigma_space import denoised, from_sigma_space, to_sigma_space
from ldmkit.samplers.timesteps import Spacing
from ldmkit.samplers.types import Denoiser, StepCallback, stepping


def sample_euler(
    denoise: Denoiser,
    shape: Sequence[int],
    schedule: NoiseSchedule,
    steps: int = 30,
    *,
    prediction: Prediction = "eps",
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
    """x_0 by Euler steps in sigma from x_T ~ N(0, I) (one model call a step). The default
    grid is "linspace" unrounded, as diffusers' EulerDiscreteScheduler."""
    check_prediction(prediction)
    grid = (grid or step_grid(schedule, steps, spacing, fractional=True)).skip(skip)
    point = grid.points[0]
    x_k = to_sigma_space(initial_latent(shape, generators, initial_noise, device, dtype), point)

    def current() -> torch.Tensor:  # x after the steps done so far, read when called
        return from_sigma_space(x_k, point)

    for here, following in stepping(grid.steps(), "Euler", show_progress, callback, current):
        derivative = (x_k - denoised(denoise, prediction, x_k, here)) / here.sigma
        x_k = x_k + derivative * (following.sigma - here.sigma)
        point = following
    return from_sigma_space(x_k, point)
