"""UniPC (Zhao et al. 2023): a multistep predictor (UniP) whose every step is followed, once the
model has been called at the new point, by a corrector (UniC) that reuses that same call, so
the order rises by one at no extra model evaluation. This is the data-prediction form with
B(h) = e^(-h) - 1 ("bh2") and order 2, the settings of diffusers' UniPCMultistepScheduler.

With lambda = log(alpha / sigma), h = lambda_t - lambda_s and D_0 the x_0 prediction at s:
x_t = (sigma_t / sigma_s) x_s - alpha_t (e^(-h) - 1) D_0 - alpha_t B(h) sum_k rho_k D_k,
where D_k are scaled differences of the newest x_0 predictions (rho = 1/2 for the second-order
predictor; the corrector solves for its rho from the phi-function moments, and its newest
difference uses the prediction at t itself). Order 1 on the first step (warm-up) and the last
(to clean data, which returns D_0).
"""

import math
from collections.abc import Sequence

import torch

from ldmkit.diffusion import NoiseSchedule, Prediction
from ldmkit.diffusion.parameterization import check_prediction
from ldmkit.samplers.grid import GridPoint, StepGrid, step_grid
from ldmkit.samplers.noise import initial_latent
from ldmkit.samplers.prediction import output_to_x0
from ldmkit.samplers.timesteps import Spacing
from ldmkit.samplers.types import Denoiser, StepCallback, call_denoiser, stepping


def sample_unipc(
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
    """x_0 by UniPC (bh2, order 2) from x_T ~ N(0, I) in `steps` steps (one model call each)."""
    check_prediction(prediction)
    grid = (grid or step_grid(schedule, steps, spacing)).skip(skip)
    x = initial_latent(shape, generators, initial_noise, device, dtype)
    walk = grid.steps()
    history: list[tuple[torch.Tensor, GridPoint]] = []  # (x_0 prediction, its point), newest last
    before: torch.Tensor | None = None  # x at the previous point, before its predictor step
    order = 0  # the previous predictor's order

    def current() -> torch.Tensor:  # x after the steps done so far, read when called
        return x

    steps_taken = stepping(walk, "UniPC", show_progress, callback, current)
    for i, (here, following) in enumerate(steps_taken):
        x0 = output_to_x0(prediction, call_denoiser(denoise, x, here.t), x, here.alpha_bar)
        if before is not None:  # UniC: correct the last step with the prediction made here
            x = _corrected(before, history, x0, here, order)
        history = [*history[-1:], (x0, here)]
        if following.is_clean:
            x = x0
            continue
        order = min(2, len(walk) - i, len(history))
        before = x
        x = _predicted(x, history, following, order)
    return x


def _base(
    x: torch.Tensor, x0: torch.Tensor, start: GridPoint, end: GridPoint
) -> tuple[torch.Tensor, float, float, float]:
    """The first-order step start -> end, with h, alpha_end and B(h) = e^(-h) - 1."""
    h = end.log_snr_half - start.log_snr_half
    alpha, sigma = math.sqrt(end.alpha_bar), math.sqrt(1.0 - end.alpha_bar)
    sigma_start = math.sqrt(1.0 - start.alpha_bar)
    phi = math.expm1(-h)
    return sigma / sigma_start * x - alpha * phi * x0, h, alpha, phi


def _predicted(
    x: torch.Tensor, history: list[tuple[torch.Tensor, GridPoint]], end: GridPoint, order: int
) -> torch.Tensor:
    (x0, point) = history[-1]
    step, h, alpha, b_h = _base(x, x0, point, end)
    if order == 1:
        return step
    x0_prev, point_prev = history[-2]
    r = (point_prev.log_snr_half - point.log_snr_half) / h
    return step - alpha * b_h * 0.5 * (x0_prev - x0) / r


def _corrected(
    before: torch.Tensor,
    history: list[tuple[torch.Tensor, GridPoint]],
    x0_here: torch.Tensor,
    here: GridPoint,
    order: int,
) -> torch.Tensor:
    x0, point = history[-1]
    step, h, alpha, b_h = _base(before, x0, point, here)
    if order == 1:
        return step - alpha * b_h * 0.5 * (x0_here - x0)
    x0_prev, point_prev = history[-2]
    r = (point_prev.log_snr_half - point.log_snr_half) / h
    # rho solves [[1, 1], [r, 1]] rho = (b_1, b_2), b_k from the phi-function moments of -h.
    hh = -h
    phi_k = b_h / hh - 1.0
    b_1 = phi_k / b_h
    b_2 = (phi_k / hh - 0.5) * 2.0 / b_h
    rho_prev = (b_1 - b_2) / (1.0 - r)
    rho_here = (b_2 - r * b_1) / (1.0 - r)
    return step - alpha * b_h * (rho_prev * (x0_prev - x0) / r + rho_here * (x0_here - x0))
