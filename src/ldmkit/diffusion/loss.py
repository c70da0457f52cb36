"""The denoising objective: per-sample MSE to the parameterisation's target, min-SNR weighted.

Min-SNR-gamma (Hang et al. 2023) weighs the x0-space loss by min(SNR_t, gamma). An eps
error is sqrt(SNR_t) times the x0 error and a v error is sqrt(SNR_t + 1) times it, so the same
weighting reads min(SNR, gamma) / SNR for eps targets and min(SNR, gamma) / (SNR + 1) for v.
"""

from dataclasses import dataclass

import torch

from ldmkit.diffusion.parameterization import (
    PREDICTIONS,
    Prediction,
    check_prediction,
    target_for,
)
from ldmkit.diffusion.schedule import NoiseSchedule, Timestep


@dataclass(frozen=True)
class DiffusionLossConfig:
    """What the denoiser predicts, the optional min-SNR-gamma weight and offset-noise strength."""

    prediction: Prediction = "eps"
    # None: plain MSE; Hang et al. 2023 recommend gamma = 5.
    min_snr_gamma: float | None = None
    # Strength of offset noise in the training eps (see `offset_noise`); 0 disables it.
    offset_noise: float = 0.0

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ValueError(
                f"prediction {self.prediction!r} is not one of {', '.join(PREDICTIONS)}"
            )
        if self.min_snr_gamma is not None and self.min_snr_gamma <= 0.0:
            raise ValueError(f"min_snr_gamma must be > 0 or None, got {self.min_snr_gamma}")
        if self.offset_noise < 0.0:
            raise ValueError(f"offset_noise must be >= 0, got {self.offset_noise}")


def min_snr_weight(snr: torch.Tensor, gamma: float, prediction: Prediction) -> torch.Tensor:
    """Min-SNR-gamma loss weight for a `prediction`-type target (Hang et al. 2023)."""
    check_prediction(prediction)
    clipped = snr.clamp(max=gamma)  # min(SNR_t, gamma)
    if prediction == "x0":
        return clipped
    if prediction == "eps":
        return clipped / snr
    return clipped / (snr + 1.0)


def diffusion_loss(
    model_output: torch.Tensor,
    x0: torch.Tensor,
    eps: torch.Tensor,
    t: Timestep,
    schedule: NoiseSchedule,
    prediction: Prediction = "eps",
    min_snr_gamma: float | None = None,
) -> torch.Tensor:
    """Per-sample (B,) mean squared error to the target, min-SNR weighted when gamma is given."""
    dtype = torch.promote_types(model_output.dtype, torch.float32)  # fp16/bf16 outputs -> fp32
    target = target_for(prediction, x0.to(dtype), eps.to(dtype), t, schedule)
    if model_output.shape != target.shape:
        raise ValueError(
            f"model output shape {tuple(model_output.shape)} must equal the target shape "
            f"{tuple(target.shape)}"
        )
    squared_error = (model_output.to(dtype) - target).square()
    loss = squared_error.reshape(squared_error.shape[0], -1).mean(dim=1)  # (B,)
    if min_snr_gamma is None:
        return loss
    if min_snr_gamma <= 0.0:
        raise ValueError(f"min_snr_gamma must be > 0 or None, got {min_snr_gamma}")
    weight = min_snr_weight(schedule.snr(t), min_snr_gamma, prediction)
    return loss * weight.to(device=loss.device, dtype=loss.dtype)
