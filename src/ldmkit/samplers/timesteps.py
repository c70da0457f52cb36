"""Which S of the T training timesteps a sampler visits, from the noisiest down.

"leading" (the spacing of LDM's DDIM and diffusers) takes 0, T//S, 2T//S, ...; "trailing"
starts at T-1 and steps down by T/S, so the first step matches pure noise (Lin et al. 2024);
"linspace" (the default here) spreads S points evenly over [0, T-1]: it starts where x_T is drawn
for, like "trailing", and ends at t = 0, like "leading", so the last denoising step is short;
"logsnr" spaces the steps evenly in lambda = log SNR / 2 (Lu et al. 2022, "logSNR"), which
suits the multistep solvers whose error terms are powers of the lambda step h.
Step i goes from t_i to t_{i+1}; the last step goes to t = -1, the clean data (alpha_bar = 1).
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


def timestep_pairs(
    schedule: NoiseSchedule, steps: int, spacing: Spacing = "linspace"
) -> list[tuple[int, int]]:
    """(t, t_prev) for each step, the last one ending at t_prev = -1 (clean data)."""
    ts = select_timesteps(schedule, steps, spacing)
    return list(zip(ts, [*ts[1:], -1], strict=True))


def alpha_bar_of(schedule: NoiseSchedule, t: int) -> float:
    """alpha_bar_t as a float, with alpha_bar_{-1} = 1 for the clean data."""
    return 1.0 if t < 0 else float(schedule.alpha_bar[t])


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


def skip_steps(pairs: list[tuple[int, int]], skip: int) -> list[tuple[int, int]]:
    """The (t, t_prev) pairs after the first `skip` (image-to-image starts part way down)."""
    if not 0 <= skip < len(pairs):
        raise ValueError(
            f"skip must lie in [0, {len(pairs) - 1}] for {len(pairs)} steps, got {skip}"
        )
    return pairs[skip:]
