"""Classifier-free guidance (Ho & Salimans 2021): a wrapper turning a conditional model into a
Denoiser, so that no sampler knows about guidance."""

from collections.abc import Callable, Mapping

import torch

from ldmkit.samplers.types import Denoiser

Condition = torch.Tensor | Mapping[str, torch.Tensor]
ConditionalModel = Callable[[torch.Tensor, torch.Tensor, Condition], torch.Tensor]


def classifier_free_guidance(
    model_fn: ConditionalModel,
    cond: Condition,
    uncond: Condition,
    scale: float,
    rescale: float = 0.0,
) -> Denoiser:
    """A Denoiser giving uncond + scale (cond - uncond) from one batched call of `model_fn`;
    `rescale` phi in [0, 1] blends in that output rescaled to the conditional output's standard
    deviation per sample (Lin et al. 2024, Eq. 15-16), against the over-exposure of strong
    guidance (most of all with v-prediction)."""
    _check_structure(cond, uncond)
    if not 0.0 <= rescale <= 1.0:
        raise ValueError(f"guidance rescale must lie in [0, 1], got {rescale}")

    def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        _check_batch(cond, x_t.shape[0], "cond")
        if scale == 1.0:
            return model_fn(x_t, t, cond)  # the guided output is the conditional one exactly
        _check_batch(uncond, x_t.shape[0], "uncond")
        # One call on [uncond; cond] (2B, ...) instead of two calls on B.
        output = model_fn(torch.cat([x_t, x_t]), torch.cat([t, t]), _concat(uncond, cond))
        output_uncond, output_cond = output.chunk(2)
        # Written as a weighted sum (not uncond + scale * diff) so that scale 0 is exact too.
        guided = scale * output_cond + (1.0 - scale) * output_uncond
        return guided if rescale == 0.0 else rescaled(guided, output_cond, rescale)

    return denoise


def rescaled(guided: torch.Tensor, conditional: torch.Tensor, phi: float) -> torch.Tensor:
    """phi * guided * std(conditional) / std(guided) + (1 - phi) * guided, the standard
    deviations per sample over all other dimensions (Lin et al. 2024, Eq. 15-16)."""
    dims = tuple(range(1, guided.ndim))
    ratio = conditional.std(dims, keepdim=True) / guided.std(dims, keepdim=True).clamp_min(1e-12)
    return phi * guided * ratio + (1.0 - phi) * guided


def _concat(first: Condition, second: Condition) -> Condition:
    if isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor):
        return torch.cat([first, second])
    assert isinstance(first, Mapping) and isinstance(second, Mapping)  # by _check_structure
    return {key: torch.cat([first[key], second[key]]) for key in first}


def _check_structure(cond: Condition, uncond: Condition) -> None:
    if isinstance(cond, torch.Tensor) and isinstance(uncond, torch.Tensor):
        return
    if isinstance(cond, Mapping) and isinstance(uncond, Mapping):
        if set(cond) != set(uncond):
            raise ValueError(
                f"cond keys {sorted(cond)} and uncond keys {sorted(uncond)} must be the same"
            )
        return
    raise TypeError(
        f"cond and uncond must both be tensors or both be dicts of tensors, got "
        f"{type(cond).__name__} and {type(uncond).__name__}"
    )


def _check_batch(condition: Condition, batch_size: int, name: str) -> None:
    tensors = condition.items() if isinstance(condition, Mapping) else [("", condition)]
    for key, tensor in tensors:
        if tensor.shape[0] != batch_size:
            where = f"{name}[{key!r}]" if key else name
            raise ValueError(
                f"{where} has batch {tensor.shape[0]} but x_t has {batch_size}; give one "
                "condition per sample (repeat a shared unconditional embedding with .expand)"
            )
