"""DDIM sampling (Song et al. 2021, Eq. 12): eta = 0 is deterministic, eta = 1 is DDPM."""

import math
from collections.abc import Sequence

import torch

from ldmkit.diffusion import NoiseSchedule, Prediction
from ldmkit.diffusion.parameterization import check_prediction
from ldmkit.samplers.grid import StepGrid, step_grid
from ldmkit.samplers.noise import initial_latent, randn_per_sample
from ldmkit.samplers.prediction import output_to_eps, output_to_x0
from ldmkit.samplers.timesteps import Spacing
from ldmkit.samplers.types import Denoiser, StepCallback, call_denoiser, stepping


def sample_ddim(
    denoise: Denoiser,
    shape: Sequence[int],
    schedule: NoiseSchedule,
    steps: int = 50,
    *,
    prediction: Prediction = "eps",
    eta: float = 0.0,
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
    """x_0 by DDIM from x_T ~ N(0, I) in `steps` steps with stochasticity `eta`.

    With `skip` = k the first k steps are left out and `initial_noise` is x at the timestep of
    step k (image-to-image: a noised image, SDEdit). `grid` (`step_grid`) replaces `steps` and
    `spacing` by a grid of one's own (Karras sigmas, steps_offset, final alpha_bar)."""
    check_prediction(prediction)
    if eta < 0.0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    grid = (grid or step_grid(schedule, steps, spacing)).skip(skip)
    x = initial_latent(shape, generators, initial_noise, device, dtype)

    def current() -> torch.Tensor:  # x after the steps done so far, read when called
        return x

    for here, following in stepping(grid.steps(), "DDIM", show_progress, callback, current):
        output = call_denoiser(denoise, x, here.t)
        x0 = output_to_x0(prediction, output, x, here.alpha_bar)
        if following.is_clean:
            x = x0
            continue
        eps = output_to_eps(prediction, output, x, here.alpha_bar)
        alpha_bar, alpha_bar_prev = here.alpha_bar, following.alpha_bar
        # Eq. 16: sigma_t(eta) = eta sqrt((1 - ab_prev) / (1 - ab)) sqrt(1 - ab / ab_prev).
        sigma = eta * math.sqrt(
            (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * (1.0 - alpha_bar / alpha_bar_prev)
        )
        direction = math.sqrt(max(1.0 - alpha_bar_prev - sigma**2, 0.0)) * eps
        x = math.sqrt(alpha_bar_prev) * x0 + direction
        if sigma > 0.0:
            x = x + sigma * randn_per_sample(x.shape, generators, x.device, x.dtype)
    return x
