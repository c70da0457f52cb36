"""The noise schedule a CompVis / Stable Diffusion checkpoint stores as its `betas` buffer,
recognised as one ldmkit builds (the file's own schedule, not a guess from its family), with
the sampling conventions of the code those files come from."""

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch

from ldmkit.checkpoint import CheckpointError
from ldmkit.diffusion import (
    ScheduleConfig,
    beta_linear_schedule,
    build_schedule,
    cosine_schedule,
    linear_schedule,
)
from ldmkit.interop.keys import as_written

# The sampling conventions of the CompVis / Stability code: its DDIM and PLMS step from
# T // S * i + 1 and end at alpha_bar_0 (`make_ddim_timesteps`).
COMPVIS_CONVENTIONS: dict[str, Any] = {"steps_offset": 1, "set_alpha_to_one": False}


def schedule_from_state(state: Mapping[str, torch.Tensor]) -> ScheduleConfig:
    """The schedule whose betas the file stores (LDM's linear, the plain linear one or the
    cosine one, checked to 1e-5); SD 1.x's when it stores none."""
    betas = state.get("betas")
    if betas is None:
        return ScheduleConfig("linear", 1000, 0.00085, 0.012, **COMPVIS_CONVENTIONS)
    betas = betas.double()
    # The ends as written in configs (0.00085, not float32's 0.0008500000112690032).
    steps, start, end = len(betas), as_written(betas[0]), as_written(betas[-1])
    if torch.allclose(linear_schedule(steps, start, end).betas, betas, rtol=1e-5, atol=0):
        return ScheduleConfig("linear", steps, start, end, **COMPVIS_CONVENTIONS)
    # Linear in beta itself (the CompVis code's "sqrt_linear", DDPM's schedule).
    if torch.allclose(beta_linear_schedule(steps, start, end).betas, betas, rtol=1e-5, atol=0):
        return ScheduleConfig("beta_linear", steps, start, end, **COMPVIS_CONVENTIONS)
    if torch.allclose(cosine_schedule(steps).betas, betas, rtol=1e-5, atol=0):
        return ScheduleConfig("cosine", steps, **COMPVIS_CONVENTIONS)
    # A zero-terminal-SNR file stores rescaled betas (their first is the original's): those of
    # Stable Diffusion's linear schedule (beta_end 0.012) are recognised.
    try:
        config = ScheduleConfig("linear", steps, start, 0.012, zero_terminal_snr=True)
        rescaled = build_schedule(config).alpha_bar
    except ValueError:  # no such schedule starts at `start` (its rescaled betas leave (0, 1))
        rescaled = None
    alpha_bar = torch.cumprod(1.0 - betas, 0)
    if rescaled is not None and torch.allclose(rescaled[:-1], alpha_bar[:-1], rtol=1e-4, atol=1e-7):
        return replace(config, **COMPVIS_CONVENTIONS)
    raise CheckpointError(
        "the checkpoint's betas follow neither LDM's linear (sqrt-linear) schedule, the plain "
        "linear one nor the cosine one; ldmkit cannot reproduce its noise schedule"
    )
