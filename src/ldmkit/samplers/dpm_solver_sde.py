"""DPM-Solver++(2M) SDE (Lu et al. 2022b; the midpoint form of k-diffusion's
`sample_dpmpp_2m_sde` and diffusers' "sde-dpmsolver++", order 2).

With lambda = log(alpha / sigma) and h = lambda_next - lambda, a step of the SDE solver is
x_next = (sigma_next / sigma) e^(-eta h) x + alpha_next (1 - e^(-(1 + eta) h)) (D + D1 / 2)
         + sigma_next sqrt(1 - e^(-2 eta h)) z,
where D is the newest x_0 prediction, D1 = (D - D_prev) / r with r = h_prev / h (0 on the first
step), and z fresh noise. eta = 1 is the SDE the web UIs call "DPM++ 2M SDE"; eta = 0 is the ODE
solver DPM++ 2M. The last step, to clean data, returns D.
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


def sample_dpmpp_2m_sde(
    denoise: Denoiser,
    shape: Sequence[int],
    schedule: NoiseSchedule,
    steps: int = 20,
    *,
    prediction: Prediction = "eps",
    eta: float = 1.0,
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
    """x_0 by DPM-Solver++(2M) SDE from x_T ~ N(0, I) in `steps` steps (one model call each);
    each sample's noise comes from its generator."""
    check_prediction(prediction)
    if eta < 0.0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    grid = (grid or step_grid(schedule, steps, spacing)).skip(skip)
    x = initial_latent(shape, generators, initial_noise, device, dtype)
    x0_prev: torch.Tensor | None = None
    h_prev = 0.0

    def current() -> torch.Tensor:  # x after the steps done so far, read when called
        return x

    walk = stepping(grid.steps(), "DPM++ 2M SDE", show_progress, callback, current)
    for here, following in walk:
        x0 = output_to_x0(prediction, call_denoiser(denoise, x, here.t), x, here.alpha_bar)
        if following.is_clean:
            x = x0
            continue
        sigma, sigma_next = math.sqrt(1.0 - here.alpha_bar), math.sqrt(1.0 - following.alpha_bar)
        h = following.log_snr_half - here.log_snr_half
        gain = -math.expm1(-h - eta * h)  # 1 - e^(-(1 + eta) h)
        x = (sigma_next / sigma) * math.exp(-eta * h) * x + math.sqrt(
            following.alpha_bar
        ) * gain * x0
        if x0_prev is not None:
            r = h_prev / h
            x = x + 0.5 * math.sqrt(following.alpha_bar) * gain * (x0 - x0_prev) / r
        if eta > 0.0:
            noise = randn_per_sample(x.shape, generators, x.device, x.dtype)
            x = x + sigma_next * math.sqrt(-math.expm1(-2.0 * eta * h)) * noise
        x0_prev, h_prev = x0, h
    return x
