"""PLMS, the pseudo linear multistep sampler of Liu et al. 2022 (PNDM) as LDM uses it.

Each step applies the deterministic DDIM "transfer" (PNDM's phi) with an eps from a 4th-order
Adams-Bashforth combination of past model outputs (the linear multistep part). The first step
is bootstrapped by a pseudo improved Euler step (two model calls); steps 2 and 3 use the 2nd-
and 3rd-order Adams-Bashforth formulas while the history fills.
"""

import math
from collections.abc import Sequence

import torch

from ldmkit.diffusion import NoiseSchedule, Prediction
from ldmkit.diffusion.parameterization import check_prediction
from ldmkit.samplers.grid import GridPoint, StepGrid, step_grid
from ldmkit.samplers.noise import initial_latent
from ldmkit.samplers.prediction import output_to_eps
from ldmkit.samplers.timesteps import Spacing
from ldmkit.samplers.types import Denoiser, StepCallback, call_denoiser, stepping


def sample_plms(
    denoise: Denoiser,
    shape: Sequence[int],
    schedule: NoiseSchedule,
    steps: int = 50,
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
    """x_0 by PLMS from x_T ~ N(0, I) in `steps` steps (steps + 1 model calls)."""
    check_prediction(prediction)
    grid = (grid or step_grid(schedule, steps, spacing)).skip(skip)
    x = initial_latent(shape, generators, initial_noise, device, dtype)

    def eps_at(x_t: torch.Tensor, point: GridPoint) -> torch.Tensor:
        output = call_denoiser(denoise, x_t, point.t)
        return output_to_eps(prediction, output, x_t, point.alpha_bar)

    history: list[torch.Tensor] = []  # past eps, newest last (at most 3 kept)

    def current() -> torch.Tensor:  # x after the steps done so far, read when called
        return x

    for here, following in stepping(grid.steps(), "PLMS", show_progress, callback, current):
        eps = eps_at(x, here)
        if not history and following.t is not None:
            # Pseudo improved Euler: average eps here and at the Euler-predicted next point.
            eps_next = eps_at(_transfer(x, eps, here, following), following)
            eps_prime = (eps + eps_next) / 2.0
        elif not history:
            eps_prime = eps  # a single step: plain DDIM
        elif len(history) == 1:
            eps_prime = (3.0 * eps - history[-1]) / 2.0
        elif len(history) == 2:
            eps_prime = (23.0 * eps - 16.0 * history[-1] + 5.0 * history[-2]) / 12.0
        else:
            eps_prime = (
                55.0 * eps - 59.0 * history[-1] + 37.0 * history[-2] - 9.0 * history[-3]
            ) / 24.0
        history = [*history[-2:], eps]
        x = _transfer(x, eps_prime, here, following)
    return x


def _transfer(
    x_t: torch.Tensor, eps: torch.Tensor, here: GridPoint, following: GridPoint
) -> torch.Tensor:
    # PNDM's transfer phi (Liu et al. 2022) = a DDIM step with eta = 0:
    # x_prev = sqrt(alpha_bar_prev) x_0(eps) + sqrt(1 - alpha_bar_prev) eps.
    alpha_bar, alpha_bar_prev = here.alpha_bar, following.alpha_bar
    x0 = (x_t - math.sqrt(1.0 - alpha_bar) * eps) / math.sqrt(alpha_bar)
    return math.sqrt(alpha_bar_prev) * x0 + math.sqrt(1.0 - alpha_bar_prev) * eps
