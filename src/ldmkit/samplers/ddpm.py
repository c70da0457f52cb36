"""Ancestral DDPM sampling with the posterior variance (Ho et al. 2020, Eqs. 6-7, Algorithm 2).

With fewer steps than T the chain is respaced (Nichol & Dhariwal 2021, Sec. 4): between visited
timesteps t > s, beta = 1 - alpha_bar_t / alpha_bar_s and q(x_s | x_t, x_0) is the same Gaussian.
"""

import math
from collections.abc import Sequence

import torch

from ldmkit.diffusion import NoiseSchedule, Prediction
from ldmkit.diffusion.parameterization import check_prediction
from ldmkit.samplers.grid import StepGrid, step_grid
from ldmkit.samplers.noise import initial_latent, randn_per_sample
from ldmkit.samplers.prediction import output_to_x0
from ldmkit.samplers.timesteps import Spacing
from ldmkit.samplers.types import Denoiser, StepCallback, call_denoiser, stepping


def sample_ddpm(
    denoise: Denoiser,
    shape: Sequence[int],
    schedule: NoiseSchedule,
    steps: int | None = None,
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
    """x_0 by ancestral sampling from x_T ~ N(0, I); `steps` defaults to all T timesteps.

    With `skip` = k the first k steps are left out and `initial_noise` is x at the timestep of
    step k (image-to-image)."""
    check_prediction(prediction)
    steps = schedule.num_timesteps if steps is None else steps
    grid = (grid or step_grid(schedule, steps, spacing)).skip(skip)
    x = initial_latent(shape, generators, initial_noise, device, dtype)

    def current() -> torch.Tensor:  # x after the steps done so far, read when called
        return x

    for here, following in stepping(grid.steps(), "DDPM", show_progress, callback, current):
        x0 = output_to_x0(prediction, call_denoiser(denoise, x, here.t), x, here.alpha_bar)
        if following.is_clean:
            x = x0  # the last step's posterior is a point mass at the predicted x_0
            continue
        alpha_bar, alpha_bar_prev = here.alpha_bar, following.alpha_bar
        beta = 1.0 - alpha_bar / alpha_bar_prev  # of the (respaced) step t -> t_prev
        # Posterior q(x_{t-1} | x_t, x_0): mean (Eq. 7) and variance beta_tilde.
        coefficient_x0 = math.sqrt(alpha_bar_prev) * beta / (1.0 - alpha_bar)
        coefficient_xt = math.sqrt(1.0 - beta) * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
        variance = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * beta
        z = randn_per_sample(x.shape, generators, x.device, x.dtype)
        x = coefficient_x0 * x0 + coefficient_xt * x + math.sqrt(variance) * z
    return x
