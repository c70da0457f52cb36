"""Per-sample noise: each sample draws from its own generator, so batching never changes it."""

from collections.abc import Sequence

import torch


def randn_per_sample(
    shape: Sequence[int],
    generators: Sequence[torch.Generator] | None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """N(0, I) of `shape`, row i drawn from generators[i] (or the global RNG when None)."""
    shape = tuple(shape)
    if generators is None:
        return torch.randn(shape, device=device, dtype=dtype)
    if len(generators) != shape[0]:
        raise ValueError(
            f"got {len(generators)} generators for a batch of {shape[0]}; pass one per sample"
        )
    # Drawn in float32 on each generator's own device, so a seed gives the same numbers
    # whatever the sampling dtype.
    rows = [torch.randn(shape[1:], generator=g, device=g.device) for g in generators]
    return torch.stack(rows).to(device=device, dtype=dtype)


def initial_latent(
    shape: Sequence[int],
    generators: Sequence[torch.Generator] | None,
    initial_noise: torch.Tensor | None,
    device: torch.device | str | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """x_T: `initial_noise` when given, else per-sample draws; on `device` (default: noise's)."""
    if initial_noise is None:
        return randn_per_sample(shape, generators, device or "cpu", dtype)
    if tuple(initial_noise.shape) != tuple(shape):
        raise ValueError(
            f"initial_noise has shape {tuple(initial_noise.shape)}, expected {tuple(shape)}"
        )
    return initial_noise.to(device=device or initial_noise.device, dtype=dtype)
