"""DPM-Solver++(2M) in data (x_0) prediction form (Lu et al. 2022b, Algorithm 2).

With alpha_t = sqrt(alpha_bar_t), sigma_t = sqrt(1 - alpha_bar_t), lambda_t = log(alpha/sigma)
and h = lambda_s - lambda_t for the step t -> s:
x_s = (sigma_s / sigma_t) x_t - alpha_s (exp(-h) - 1) D, where D is the newest x_0 prediction on
the first step and (1 + 1/(2r)) x0_t - 1/(2r) x0_prev after it, r = h_prev / h. The last step
(to clean data, lambda = inf) is first order and returns the x_0 prediction. The default
spacing is even in lambda ("logsnr"): with steps even in t the ratio r strays far from 1 near
t = 0 and the extrapolation in D overshoots (on Gaussian data, +13% std at 20 steps).
"""

import math
from collections.abc import Sequence

import torch

from ldmkit.diffusion import NoiseSchedule, Prediction
from ldmkit.diffusion.parameterization import check_prediction
from ldmkit.samplers.grid import StepGrid, step_grid
from ldmkit.samplers.noise import initial_latent
from ldmkit.samplers.prediction import output_to_x0
from ldmkit.samplers.timesteps import Spacing
from ldmkit.samplers.types import Denoiser, StepCallback, call_denoiser, stepping


def sample_dpmpp_2m(
    denoise: Denoiser,
    shape: Sequence[int],
    schedule: NoiseSchedule,
    steps: int = 20,
    *,
    prediction: Prediction = "eps",
    spacing: Spacing = "logsnr",
    grid: StepGrid | None = None,
    generators: Sequence[torch.Generator] | None = None,
    initial_noise: torch.Tensor | None = None,
    skip: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    show_progress: bool = False,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """x_0 by DPM-Solver++(2M) from x_T ~ N(0, I) in `steps` steps (one model call each)."""
    check_prediction(prediction)
    grid = (grid or step_grid(schedule, steps, spacing)).skip(skip)
    x = initial_latent(shape, generators, initial_noise, device, dtype)
    x0_prev: torch.Tensor | None = None
    h_prev = 0.0

    def current() -> torch.Tensor:  # x after the steps done so far, read when called
        return x

    walk = stepping(grid.steps(), "DPM-Solver++(2M)", show_progress, callback, current)
    for here, following in walk:
        x0 = output_to_x0(prediction, call_denoiser(denoise, x, here.t), x, here.alpha_bar)
        if following.is_clean:
            x = x0
            continue
        alpha_bar, alpha_bar_prev = here.alpha_bar, following.alpha_bar
        sigma, sigma_prev = math.sqrt(1.0 - alpha_bar), math.sqrt(1.0 - alpha_bar_prev)
        h = following.log_snr_half - here.log_snr_half
        if x0_prev is None:
            denoised = x0  # first step: DPM-Solver++(1), i.e. DDIM
        else:
            r = h_prev / h
            denoised = (1.0 + 1.0 / (2.0 * r)) * x0 - (1.0 / (2.0 * r)) * x0_prev
        x = (sigma_prev / sigma) * x - math.sqrt(alpha_bar_prev) * math.expm1(-h) * denoised
        x0_prev, h_prev = x0, h
    return x
