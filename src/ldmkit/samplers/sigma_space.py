"""The variance-exploding form the k-diffusion samplers step in (Karras et al. 2022).

x / sqrt(alpha_bar) = x_0 + sigma eps: the state x_k of Euler, Heun and their kin is the
variance-preserving x scaled by sqrt(1 + sigma^2). The model still sees the variance-preserving
x (x_k / sqrt(1 + sigma^2), diffusers' `scale_model_input`) at the point's timestep, and what it
predicts is turned into the denoised D = x_0 estimate these samplers step towards.
"""

import math

import torch

from ldmkit.diffusion import Prediction
from ldmkit.samplers.grid import GridPoint
from ldmkit.samplers.types import Denoiser, call_denoiser


def to_sigma_space(x: torch.Tensor, point: GridPoint) -> torch.Tensor:
    """x_k = x sqrt(1 + sigma^2) for a variance-preserving x at `point`."""
    return x * math.sqrt(point.sigma**2 + 1.0)


def from_sigma_space(x_k: torch.Tensor, point: GridPoint) -> torch.Tensor:
    """The variance-preserving x of x_k at `point` (x_k itself at clean data)."""
    return x_k if point.is_clean else x_k / math.sqrt(point.sigma**2 + 1.0)


def denoised(
    denoise: Denoiser, prediction: Prediction, x_k: torch.Tensor, point: GridPoint
) -> torch.Tensor:
    """D(x_k, sigma): the model's x_0 estimate at `point`."""
    sigma = point.sigma
    output = call_denoiser(denoise, from_sigma_space(x_k, point), point.t)
    if prediction == "eps":
        return x_k - sigma * output
    if prediction == "v":
        return output * (-sigma / math.sqrt(sigma**2 + 1.0)) + x_k / (sigma**2 + 1.0)
    return output
