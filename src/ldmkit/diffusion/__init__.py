"""L1: diffusion maths without a network: schedules, eps <-> x0 <-> v, q(x_t | x_0), the loss."""

from ldmkit.diffusion.forward_process import offset_noise, q_sample, sample_timesteps
from ldmkit.diffusion.loss import DiffusionLossConfig, diffusion_loss, min_snr_weight
from ldmkit.diffusion.parameterization import (
    PREDICTIONS,
    Prediction,
    eps_to_x0,
    target_for,
    to_eps,
    to_x0,
    v_to_eps,
    v_to_x0,
    velocity,
    x0_to_eps,
)
from ldmkit.diffusion.schedule import (
    NoiseSchedule,
    ScheduleConfig,
    beta_linear_schedule,
    broadcast_to,
    build_schedule,
    cosine_schedule,
    linear_schedule,
    rescale_zero_terminal_snr,
)

__all__ = [
    "PREDICTIONS",
    "DiffusionLossConfig",
    "NoiseSchedule",
    "Prediction",
    "ScheduleConfig",
    "beta_linear_schedule",
    "broadcast_to",
    "build_schedule",
    "cosine_schedule",
    "diffusion_loss",
    "eps_to_x0",
    "linear_schedule",
    "min_snr_weight",
    "offset_noise",
    "q_sample",
    "rescale_zero_terminal_snr",
    "sample_timesteps",
    "target_for",
    "to_eps",
    "to_x0",
    "v_to_eps",
    "v_to_x0",
    "velocity",
    "x0_to_eps",
]
