"""Noise schedules of the variance-preserving forward process: betas, alphas, alpha_bar.

x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, alpha_bar_t = prod_{s<=t} (1 - beta_s)
(Ho et al. 2020, Eq. 4). Timesteps are indices 0..T-1 as in DDPM/LDM; t = 0 is the first noising
step, not clean data. Tables are float64; coefficients are cast to the data's dtype only when they
meet the data (`broadcast_to`).
"""

import math
from dataclasses import dataclass, field
from typing import Literal

import torch

# "linear" is LDM's linear-in-sqrt(beta) schedule (CompVis' "linear", diffusers' "scaled_linear");
# "beta_linear" is linear in beta itself (DDPM's; diffusers' "linear", CompVis' "sqrt_linear").
ScheduleKind = Literal["linear", "cosine", "beta_linear"]
SCHEDULE_KINDS: tuple[str, ...] = ("linear", "cosine", "beta_linear")

Timestep = torch.Tensor | int | float


@dataclass(frozen=True)
class ScheduleConfig:
    """Which noise schedule to build, with its parameters."""

    # LDM's linear schedule: 0.00085..0.012 (Stable Diffusion), 0.0015..0.0195 (the paper's
    # LDM-f4/f8 configs); see `linear_schedule`. beta_linear: DDPM's 0.0001..0.02 (Ho et al.
    # 2020), as diffusers' DDPM and LDMPipeline folders use; see `beta_linear_schedule`.

    kind: ScheduleKind = "linear"
    num_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    # Cosine only: the small offset s that keeps beta_0 from vanishing (Nichol & Dhariwal 2021).
    cosine_s: float = 0.008
    # Rescale to zero terminal SNR (Lin et al. 2024, Algorithm 1), for v-prediction models.
    zero_terminal_snr: bool = False
    # Sampling conventions the model was released with (Stable Diffusion and CompVis LDM: 1 and
    # False): added to "leading" timesteps, and whether DDIM / PLMS end at clean data (True) or
    # at the first training timestep's alpha_bar (False; diffusers' `set_alpha_to_one`).
    steps_offset: int = 0
    set_alpha_to_one: bool = True

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {', '.join(SCHEDULE_KINDS)}")
        if self.num_timesteps < 1:
            raise ValueError(f"num_timesteps must be >= 1, got {self.num_timesteps}")
        if not 0.0 < self.beta_start <= self.beta_end < 1.0:
            raise ValueError(
                f"need 0 < beta_start <= beta_end < 1, got {self.beta_start}, {self.beta_end}"
            )
        if self.cosine_s < 0.0:
            raise ValueError(f"cosine_s must be >= 0, got {self.cosine_s}")
        if not 0 <= self.steps_offset < self.num_timesteps:
            raise ValueError(
                f"steps_offset must lie in [0, {self.num_timesteps - 1}], got {self.steps_offset}"
            )


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """A discrete schedule of T betas with the derived alphas and alpha_bar (float64, CPU)."""

    betas: torch.Tensor  # (T,)
    alphas: torch.Tensor = field(init=False)  # (T,) 1 - beta_t
    alpha_bar: torch.Tensor = field(init=False)  # (T,) prod_{s<=t} alpha_s
    log_alpha_bar: torch.Tensor = field(init=False)  # (T,)

    def __post_init__(self) -> None:
        betas = torch.as_tensor(self.betas).detach().to("cpu", torch.float64)
        if betas.ndim != 1 or betas.numel() < 1:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got {tuple(betas.shape)}")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("every beta must lie in (0, 1); clip the schedule (e.g. at 0.999)")
        alphas = 1.0 - betas
        log_alpha_bar = torch.cumsum(torch.log(alphas), dim=0)
        object.__setattr__(self, "betas", betas)
        object.__setattr__(self, "alphas", alphas)
        object.__setattr__(self, "alpha_bar", torch.cumprod(alphas, dim=0))
        object.__setattr__(self, "log_alpha_bar", log_alpha_bar)

    @property
    def num_timesteps(self) -> int:
        """T, the number of discrete timesteps."""
        return self.betas.numel()

    def alpha_bar_at(self, t: Timestep) -> torch.Tensor:
        """alpha_bar_t for integer t (exact) or fractional t: there the noise level
        sigma = sqrt((1 - alpha_bar) / alpha_bar) is interpolated linearly between the
        neighbouring timesteps (the convention of diffusers' Euler and Heun schedulers, whose
        fractional timesteps a model is then called at)."""
        t = _as_tensor(t)
        if not t.is_floating_point():
            return _gather(self.alpha_bar, t, self.num_timesteps)
        sigma_table = ((1.0 - self.alpha_bar) / self.alpha_bar).sqrt()
        sigma = _interpolate(sigma_table, t, self.num_timesteps)
        return 1.0 / (1.0 + sigma.square())

    def sqrt_alpha_bar(self, t: Timestep) -> torch.Tensor:
        """sqrt(alpha_bar_t), the signal scale of x_t."""
        return self.alpha_bar_at(t).sqrt()

    def sigma(self, t: Timestep) -> torch.Tensor:
        """sqrt(1 - alpha_bar_t), the noise scale of x_t."""
        return (1.0 - self.alpha_bar_at(t)).sqrt()

    def snr(self, t: Timestep) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t) (Kingma et al. 2021)."""
        alpha_bar = self.alpha_bar_at(t)
        return alpha_bar / (1.0 - alpha_bar)

    def log_snr(self, t: Timestep) -> torch.Tensor:
        """log SNR = 2 lambda_t, lambda_t = log(alpha_t / sigma_t) (Lu et al. 2022)."""
        alpha_bar = self.alpha_bar_at(t)
        return torch.log(alpha_bar) - torch.log1p(-alpha_bar)


def linear_schedule(
    num_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012
) -> NoiseSchedule:
    """LDM's "linear" schedule: linear in sqrt(beta), so beta_t is quadratic in t."""
    ScheduleConfig("linear", num_timesteps, beta_start, beta_end)  # raises on invalid arguments
    # linspace in float64 from sqrt(beta_start) to sqrt(beta_end), then squared (CompVis LDM).
    sqrt_betas = torch.linspace(
        math.sqrt(beta_start), math.sqrt(beta_end), num_timesteps, dtype=torch.float64
    )
    return NoiseSchedule(sqrt_betas.square())


def beta_linear_schedule(
    num_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02
) -> NoiseSchedule:
    """DDPM's linear schedule (Ho et al. 2020): beta_t linear in t from beta_start to beta_end
    (diffusers' "linear", the CompVis code's "sqrt_linear"; not LDM's `linear_schedule`)."""
    ScheduleConfig("beta_linear", num_timesteps, beta_start, beta_end)  # raises on bad arguments
    return NoiseSchedule(torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64))


def cosine_schedule(num_timesteps: int = 1000, s: float = 0.008) -> NoiseSchedule:
    """Cosine schedule of Nichol & Dhariwal 2021 (Eq. 17), betas clipped at 0.999."""
    ScheduleConfig("cosine", num_timesteps, cosine_s=s)  # raises on invalid arguments
    steps = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
    f = torch.cos((steps + s) / (1.0 + s) * math.pi / 2.0).square()  # f(t), alpha_bar = f(t)/f(0)
    betas = 1.0 - f[1:] / f[:-1]
    return NoiseSchedule(betas.clamp(max=0.999))


# alpha_bar at the last timestep of a zero-terminal-SNR schedule: 0 in the paper, this small
# value in practice (as diffusers does), so that an eps-prediction model stays defined there.
ZERO_SNR_ALPHA_BAR = 2.0**-24


def rescale_zero_terminal_snr(schedule: NoiseSchedule) -> NoiseSchedule:
    """The schedule with sqrt(alpha_bar) shifted and scaled so that it keeps its first value and
    reaches 0 at the last timestep (Lin et al. 2024, "Common Diffusion Noise Schedules and
    Sample Steps are Flawed", Algorithm 1): training then sees pure noise at t = T - 1, as
    sampling starts from. alpha_bar_{T-1} is `ZERO_SNR_ALPHA_BAR` rather than exactly 0."""
    root = schedule.alpha_bar.sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * first / (first - last)
    alpha_bar = root.square()
    alpha_bar[-1] = ZERO_SNR_ALPHA_BAR
    alphas = torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])
    return NoiseSchedule(1.0 - alphas)


def build_schedule(config: ScheduleConfig) -> NoiseSchedule:
    """The schedule that `config` describes."""
    match config.kind:
        case "linear":
            schedule = linear_schedule(config.num_timesteps, config.beta_start, config.beta_end)
        case "cosine":
            schedule = cosine_schedule(config.num_timesteps, config.cosine_s)
        case "beta_linear":
            schedule = beta_linear_schedule(
                config.num_timesteps, config.beta_start, config.beta_end
            )
        case _:
            raise ValueError(f"kind {config.kind!r} is not one of {', '.join(SCHEDULE_KINDS)}")
    return rescale_zero_terminal_snr(schedule) if config.zero_terminal_snr else schedule


def broadcast_to(coefficient: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample coefficients (B,) or a scalar, shaped (B, 1, ..., 1) in x's dtype and device."""
    coefficient = coefficient.to(device=x.device, dtype=x.dtype)
    if coefficient.ndim == 0:
        return coefficient
    if coefficient.ndim != 1 or coefficient.shape[0] not in (1, x.shape[0]):
        raise ValueError(
            f"coefficients of shape {tuple(coefficient.shape)} do not match a batch of "
            f"{x.shape[0]}; pass one timestep per sample (B,) or a scalar"
        )
    return coefficient.reshape(-1, *([1] * (x.ndim - 1)))


def _as_tensor(t: Timestep) -> torch.Tensor:
    if isinstance(t, torch.Tensor):
        return t
    return torch.tensor(t, dtype=torch.float64 if isinstance(t, float) else torch.long)


def _table_for(table: torch.Tensor, device: torch.device) -> torch.Tensor:
    # MPS has no float64: gather there in float32 (the CPU and CUDA paths stay float64).
    dtype = torch.float32 if device.type == "mps" else torch.float64
    return table.to(device=device, dtype=dtype)


def _gather(table: torch.Tensor, t: torch.Tensor, num_timesteps: int) -> torch.Tensor:
    if bool((t < 0).any()) or bool((t >= num_timesteps).any()):
        raise ValueError(
            f"timesteps must lie in [0, {num_timesteps - 1}], got min {int(t.min())} "
            f"max {int(t.max())}"
        )
    return _table_for(table, t.device)[t.long()]


def _interpolate(table: torch.Tensor, t: torch.Tensor, num_timesteps: int) -> torch.Tensor:
    if bool((t < 0).any()) or bool((t > num_timesteps - 1).any()):
        raise ValueError(
            f"timesteps must lie in [0, {num_timesteps - 1}], got min {float(t.min())} "
            f"max {float(t.max())}"
        )
    values = _table_for(table, t.device)
    t = t.to(values.dtype)
    low = t.floor().long().clamp(max=num_timesteps - 1)
    high = (low + 1).clamp(max=num_timesteps - 1)
    weight = t - low.to(t.dtype)
    return values[low] * (1.0 - weight) + values[high] * weight
