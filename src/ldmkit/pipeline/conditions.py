"""What a list of conditioners gives the denoiser at sampling time: the (cond, uncond) pair of
classifier-free guidance (Ho & Salimans 2022), the model's default guidance, and the latent
size an input fixes. Pure functions over `Conditioner`s; `LatentDiffusion` calls them."""

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ldmkit.conditioning import Conditioner, Conditioning


def nulled(conditioners: Sequence[Conditioner]) -> list[Conditioner]:
    """The conditioners guidance contrasts with their null condition: all of a model with one;
    in a hybrid, those other than the map kept in both branches."""
    if len(conditioners) == 1:
        return list(conditioners)
    return [c for c in conditioners if c.nulled_in_hybrid]


def default_guidance(conditioners: Sequence[Conditioner]) -> float:
    """3, or 1 where guidance has no trained null condition (a spatial-only model trained
    without spatial dropout)."""
    return 3.0 if all(c.can_guide for c in nulled(conditioners)) else 1.0


def guided_pair(
    conditioners: Sequence[Conditioner],
    inputs: Mapping[str, Any],
    n: int,
    guidance: float,
    device: torch.device,
    negatives: Mapping[str, Any] | None = None,
) -> tuple[Conditioning, Conditioning]:
    """(cond, uncond) of `n` samples from `inputs` (values by each conditioner's `input_name`),
    checked against the conditioners: each encodes its input and gives its null condition; a
    hybrid model keeps its map in both branches and guides with its other condition.
    `negatives` replace the null condition of a guided conditioner with the encoding of their
    value (negative prompts: guidance then steers away from them)."""
    names = [c.input_name for c in conditioners]
    for name, values in inputs.items():
        if values is not None and name not in names:
            taken = ", ".join(names) or "nothing (it is unconditional)"
            raise ValueError(f"this model takes no {name}; it takes {taken}")
    contrasted = nulled(conditioners)
    negatives = {k: v for k, v in (negatives or {}).items() if v is not None}
    for name in negatives:
        if name not in [c.input_name for c in contrasted]:
            raise ValueError(f"a negative {name} needs a model guided by {name}; this one is not")
        if guidance == 1.0:
            raise ValueError(
                f"a negative {name} acts through guidance, and guidance is 1 (off): set "
                "guidance above 1 (e.g. 7.5) or drop the negative"
            )
    if guidance != 1.0:
        for conditioner in contrasted:
            if not conditioner.can_guide:
                raise ValueError(conditioner.guide_hint())
    cond: Conditioning = {}
    uncond: Conditioning = {}
    for conditioner in conditioners:
        part = conditioner.encode(inputs.get(conditioner.input_name), n, device)
        cond.update(part)
        if conditioner.input_name in negatives:
            uncond.update(conditioner.encode(negatives[conditioner.input_name], n, device))
        else:
            uncond.update(conditioner.null(part, n, device) if conditioner in contrasted else part)
    return cond, uncond


def latent_side(
    conditioners: Sequence[Conditioner],
    inputs: Mapping[str, Any],
    latent_size: int | tuple[int, int] | None,
    default: int,
) -> tuple[int, int]:
    """The latent's (h, w): what an input fixes (a map's side), else `latent_size` (a side or
    (h, w)), else `default` (the training side)."""
    for conditioner in conditioners:
        fixed = conditioner.latent_size(inputs.get(conditioner.input_name))
        if fixed is not None:
            if latent_size is not None and _pair(latent_size) != fixed:
                raise ValueError(f"latent_size={latent_size} but the condition is {fixed}")
            return fixed
    return _pair(latent_size or default)


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
