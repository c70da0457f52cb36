"""A model output (eps, v or x0) turned into x_0 or eps at a grid point's alpha_bar.

The samplers convert with the grid's own alpha_bar, not by looking t up in the schedule, so a
point off the training timesteps (Karras sigmas, a fractional t) converts exactly too.
"""

import torch

from ldmkit.diffusion import Prediction
from ldmkit.diffusion.parameterization import eps_to_x0, v_to_eps, v_to_x0, x0_to_eps


def _alpha_bar(alpha_bar: float, x_t: torch.Tensor) -> torch.Tensor:
    # float64 first, then x_t's dtype: the same numbers as a schedule lookup gives.
    return torch.tensor(alpha_bar, dtype=torch.float64).to(device=x_t.device, dtype=x_t.dtype)


def output_to_x0(
    prediction: Prediction, output: torch.Tensor, x_t: torch.Tensor, alpha_bar: float
) -> torch.Tensor:
    """The x_0 that `output` (of type `prediction`) implies for x_t at `alpha_bar`."""
    if prediction == "x0":
        return output
    if prediction == "v":
        return v_to_x0(x_t, output, _alpha_bar(alpha_bar, x_t))
    return eps_to_x0(x_t, output, _alpha_bar(alpha_bar, x_t))


def output_to_eps(
    prediction: Prediction, output: torch.Tensor, x_t: torch.Tensor, alpha_bar: float
) -> torch.Tensor:
    """The eps that `output` (of type `prediction`) implies for x_t at `alpha_bar`."""
    if prediction == "eps":
        return output
    if prediction == "v":
        return v_to_eps(x_t, output, _alpha_bar(alpha_bar, x_t))
    return x0_to_eps(x_t, output, _alpha_bar(alpha_bar, x_t))
