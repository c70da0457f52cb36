"""Which S of the T training timesteps a sampler visits, from the noisiest down.

"leading" (the spacing of LDM's DDIM and diffusers) takes 0, T//S, 2T//S, ...; "trailing"
starts at T-1 and steps down by T/S, so the first step matches pure noise (Lin et al. 2024);
"linspace" (the default here) spreads S points evenly over [0, T-1]: it starts where x_T is drawn
for, like "trailing", and ends at t = 0, like "leading", so the last denoising step is short;
"logsnr" spaces the steps evenly in lambda = log SNR / 2 (Lu et al. 2022, "logSNR"), which
suits the multistep solvers whose error terms are powers of the lambda step h.
`grid.step_grid` turns them into the points a sampler walks, ending at clean data.
"""

from typing import Literal

import torch

from ldmkit.diffusion import NoiseSchedule

Spacing = Literal["leading", "trailing", "linspace", "logsnr"]
SPACINGS: tuple[str, ...] = ("leading", "trailing", "linspace", "logsnr")


def select_timesteps(
    schedule: NoiseSchedule, steps: int, spacing: Spacing = "linspace"
) -> list[int]:
    """S distinct timesteps out of the schedule's T, in decreasing order."""
    num_timesteps = schedule.num_timesteps
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must lie in [1, {num_timesteps}] (the schedule's T), got {steps}")
    match spacing:
        case "leading":
            ratio = num_timesteps // steps
            ascending = [i * ratio for i in range(steps)]
        case "trailing":
            ascending = [round(num_timesteps * (i + 1) / steps) - 1 for i in range(steps)]
        case "linspace":
            if steps == 1:
                ascending = [0]
            else:
                ascending = [round(i * (num_timesteps - 1) / (steps - 1)) for i in range(steps)]
        case "logsnr":
            ascending = _logsnr_uniform(schedule, steps)
        case _:
            raise ValueError(f"spacing {spacing!r} is not one of {', '.join(SPACINGS)}")
    return ascending[::-1]


def _logsnr_uniform(schedule: NoiseSchedule, steps: int) -> list[int]:
    # The t whose lambda is nearest to each of S evenly spaced lambdas (ascending t), then
    # nudged apart where rounding made neighbours coincide; S <= T leaves room for that.
    log_snr = schedule.log_snr(torch.arange(schedule.num_timesteps))  # decreasing in t
    targets = torch.linspace(float(log_snr[0]), float(log_snr[-1]), steps, dtype=torch.float64)
    ascending = [int((log_snr - target).abs().argmin()) for target in targets]
    for i in range(1, steps):
        ascending[i] = max(ascending[i], ascending[i - 1] + 1)
    for i in range(steps - 1, -1, -1):
        limit = schedule.num_timesteps - 1 if i == steps - 1 else ascending[i + 1] - 1
        ascending[i] = min(ascending[i], limit)
    return ascending
