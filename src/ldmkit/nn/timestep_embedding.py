"""Sinusoidal embedding of (integer or continuous) diffusion timesteps."""

import math

import torch


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) timesteps -> (B, dim) float32 features [cos(t w_i), sin(t w_i)], w_i = P^(-i/half).

    Cosines first, as in the CompVis / guided-diffusion UNet (diffusers: flip_sin_to_cos=True,
    freq_shift=0); the transformer sinusoid of Vaswani et al. 2017, Sec. 3.5.
    """
    if t.ndim != 1:
        raise ValueError(f"timesteps must have shape (B,), got {tuple(t.shape)}")
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device)
    freqs = torch.exp(exponent / half)  # (half,)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))  # odd dim: one zero feature
    return emb
