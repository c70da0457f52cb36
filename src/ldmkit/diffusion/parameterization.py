"""Exact conversions between the eps, x0 and v parameterisations of a denoiser's output.

With x_t = alpha x_0 + sigma eps, alpha = sqrt(alpha_bar), sigma = sqrt(1 - alpha_bar) and
v = alpha eps - sigma x_0 (Salimans & Ho 2022, Sec. 4): x_0 = alpha x_t - sigma v and
eps = sigma x_t + alpha v. The low-level functions take alpha_bar broadcastable to x_t, so they
also serve continuous time; `to_eps` / `to_x0` / `target_for` look it up in a schedule.
"""

from typing import Literal

import torch

from ldmkit.diffusion.schedule import NoiseSchedule, Timestep, broadcast_to

Prediction = Literal["eps", "v", "x0"]
PREDICTIONS: tuple[str, ...] = ("eps", "v", "x0")


def eps_to_x0(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """x_0 = (x_t - sigma eps) / alpha."""
    return (x_t - (1.0 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()


def x0_to_eps(x_t: torch.Tensor, x0: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """eps = (x_t - alpha x_0) / sigma."""
    return (x_t - alpha_bar.sqrt() * x0) / (1.0 - alpha_bar).sqrt()


def v_to_x0(x_t: torch.Tensor, v: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """x_0 = alpha x_t - sigma v."""
    return alpha_bar.sqrt() * x_t - (1.0 - alpha_bar).sqrt() * v


def v_to_eps(x_t: torch.Tensor, v: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """eps = sigma x_t + alpha v."""
    return (1.0 - alpha_bar).sqrt() * x_t + alpha_bar.sqrt() * v


def velocity(x0: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """v = alpha eps - sigma x_0 (Salimans & Ho 2022)."""
    return alpha_bar.sqrt() * eps - (1.0 - alpha_bar).sqrt() * x0


def check_prediction(prediction: str) -> None:
    """Raise if `prediction` is not one of eps, v, x0."""
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction {prediction!r} is not one of {', '.join(PREDICTIONS)}")


def to_eps(
    prediction: Prediction,
    model_output: torch.Tensor,
    x_t: torch.Tensor,
    t: Timestep,
    schedule: NoiseSchedule,
) -> torch.Tensor:
    """The eps that a model output of type `prediction` implies at (x_t, t)."""
    check_prediction(prediction)
    if prediction == "eps":
        return model_output
    alpha_bar = broadcast_to(schedule.alpha_bar_at(t), x_t)
    if prediction == "v":
        return v_to_eps(x_t, model_output, alpha_bar)
    return x0_to_eps(x_t, model_output, alpha_bar)


def to_x0(
    prediction: Prediction,
    model_output: torch.Tensor,
    x_t: torch.Tensor,
    t: Timestep,
    schedule: NoiseSchedule,
) -> torch.Tensor:
    """The x_0 that a model output of type `prediction` implies at (x_t, t)."""
    check_prediction(prediction)
    if prediction == "x0":
        return model_output
    alpha_bar = broadcast_to(schedule.alpha_bar_at(t), x_t)
    if prediction == "v":
        return v_to_x0(x_t, model_output, alpha_bar)
    return eps_to_x0(x_t, model_output, alpha_bar)


def target_for(
    prediction: Prediction,
    x0: torch.Tensor,
    eps: torch.Tensor,
    t: Timestep,
    schedule: NoiseSchedule,
) -> torch.Tensor:
    """The regression target of a `prediction`-type model for x_t = q_sample(x0, t, eps)."""
    check_prediction(prediction)
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    return velocity(x0, eps, broadcast_to(schedule.alpha_bar_at(t), x0))
