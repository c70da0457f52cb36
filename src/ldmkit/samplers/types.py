"""The sampler's contract with a model: any callable denoise(x_t, t) -> model output."""

from collections.abc import Callable

import torch

# x_t (B, ...) and timesteps t (B,) int64 -> a prediction (eps, v or x0) shaped like x_t.
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def call_denoiser(denoise: Denoiser, x_t: torch.Tensor, t: int) -> torch.Tensor:
    """denoise(x_t, t) with t repeated per sample, checked to return x_t's shape and dtype."""
    t_batch = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)  # (B,)
    output = denoise(x_t, t_batch)
    if output.shape != x_t.shape:
        raise ValueError(
            f"the denoiser returned shape {tuple(output.shape)} for input {tuple(x_t.shape)}; "
            "it must predict eps, v or x0 with the input's shape"
        )
    return output.to(x_t.dtype)
