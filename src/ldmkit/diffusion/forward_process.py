"""The forward (noising) process q(x_t | x_0) and the noise it draws."""

import torch

from ldmkit.diffusion.schedule import NoiseSchedule, Timestep, broadcast_to


def q_sample(
    schedule: NoiseSchedule, x0: torch.Tensor, t: Timestep, eps: torch.Tensor
) -> torch.Tensor:
    """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Ho et al. 2020, Eq. 4)."""
    if eps.shape != x0.shape:
        raise ValueError(f"eps shape {tuple(eps.shape)} must equal x0 shape {tuple(x0.shape)}")
    alpha_bar = broadcast_to(schedule.alpha_bar_at(t), x0)
    return alpha_bar.sqrt() * x0 + (1.0 - alpha_bar).sqrt() * eps


def sample_timesteps(
    batch_size: int,
    schedule: NoiseSchedule,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Training timesteps t ~ U{0, ..., T-1}: (B,) int64."""
    generator_device = generator.device if generator is not None else "cpu"
    t = torch.randint(
        0, schedule.num_timesteps, (batch_size,), generator=generator, device=generator_device
    )
    return t.to(device)


def offset_noise(
    shape: tuple[int, ...],
    strength: float = 0.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """eps ~ N(0, I) plus `strength` times (B, C, 1, ..., 1) noise; strength 0 is plain noise."""
    # Offset noise (Guttenberg 2023): i.i.d. noise barely moves a channel's spatial mean, so a
    # model trained without it cannot make images much darker or brighter than average.
    if strength < 0.0:
        raise ValueError(f"offset noise strength must be >= 0, got {strength}")
    generator_device = generator.device if generator is not None else "cpu"
    eps = torch.randn(shape, generator=generator, device=generator_device)
    if strength > 0.0:
        if len(shape) < 2:
            raise ValueError(f"offset noise needs a (B, C, ...) shape, got {shape}")
        offset_shape = (shape[0], shape[1]) + (1,) * (len(shape) - 2)  # (B, C, 1, 1)
        eps = eps + strength * torch.randn(
            offset_shape, generator=generator, device=generator_device
        )
    return eps.to(device=device, dtype=dtype)
