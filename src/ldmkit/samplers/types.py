"""The sampler's contract with a model: any callable denoise(x_t, t) -> model output."""

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import torch

from ldmkit.progress import progress

# x_t (B, ...) and timesteps t (B,) -> a prediction (eps, v or x0) shaped like x_t. t is int64
# on the training timesteps, float32 where a sampler's grid is fractional (Karras sigmas, the
# k-diffusion samplers' "linspace"): a model must accept both (a sinusoidal embedding does).
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# Called after every step with (steps done, steps in all, x after that step): for progress,
# previews, or to cancel (an exception raised here ends the sampling).
StepCallback = Callable[[int, int, torch.Tensor], None]
T = TypeVar("T")


def call_denoiser(denoise: Denoiser, x_t: torch.Tensor, t: int | float | None) -> torch.Tensor:
    """denoise(x_t, t) with t repeated per sample (int64 for an int, float32 for a float),
    checked to return x_t's shape and dtype."""
    if t is None:
        raise ValueError("the grid's end point has no timestep to call the model at")
    dtype = torch.long if isinstance(t, int) else torch.float32
    t_batch = torch.full((x_t.shape[0],), t, dtype=dtype, device=x_t.device)  # (B,)
    output = denoise(x_t, t_batch)
    if output.shape != x_t.shape:
        raise ValueError(
            f"the denoiser returned shape {tuple(output.shape)} for input {tuple(x_t.shape)}; "
            "it must predict eps, v or x0 with the input's shape"
        )
    return output.to(x_t.dtype)


def stepping(
    pairs: Sequence[T],
    label: str,
    show_progress: bool,
    callback: StepCallback | None,
    current: Callable[[], torch.Tensor],
) -> Iterator[T]:
    """A sampler's loop over its steps, with a progress bar (`show_progress`) and the per-step
    `callback`: when the loop asks for step k + 1 (or ends), k steps are done and `current()`
    (the sampler's x, read through a closure) is their result."""
    total = len(pairs)
    for index, pair in enumerate(progress(pairs, label) if show_progress else pairs):
        if index and callback is not None:
            callback(index, total, current())
        yield pair
    if callback is not None:
        callback(total, total, current())
