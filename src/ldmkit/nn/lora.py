"""Low-rank adapters (LoRA, Hu et al. 2021) as weights: W <- W + scale * (alpha / rank) * up @ down.

A pair belongs to one Linear or Conv2d: `down` is (rank, in) for a Linear, (rank, in, k, k) for a
convolution; `up` is (out, rank), or (out, rank, 1, 1). Merging adds the product to the layer's
weight in float32 and rounds once to the weight's own dtype, so a model held in bf16 stays bf16.
Training adapters comes from `peft` (`training/lora.py`); merging needs nothing but torch.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LoraPair:
    """One layer's adapter: `down` (A), `up` (B) and `alpha` (the product is scaled by
    alpha / rank; `alpha` None means alpha = rank, a scale of 1)."""

    down: torch.Tensor
    up: torch.Tensor
    alpha: float | None = None

    @property
    def rank(self) -> int:
        """The adapter's rank (rows of `down`)."""
        return int(self.down.shape[0])

    def delta(self) -> torch.Tensor:
        """(alpha / rank) * up @ down in float32, shaped as the layer's weight."""
        down, up = self.down.float(), self.up.float()
        product = up.flatten(1) @ down.flatten(1)
        if down.dim() == 4:  # a convolution: (out, in, k, k)
            product = product.reshape(up.shape[0], *down.shape[1:])
        alpha = self.rank if self.alpha is None else self.alpha
        return product * (alpha / self.rank)


class LoraError(ValueError):
    """A LoRA that does not fit the model it is applied to."""


def layer_weight(module: nn.Module, name: str) -> torch.Tensor:
    """The weight of the Linear / Conv layer `name` in `module` (a LoraError if none)."""
    try:
        layer = module.get_submodule(name)
    except AttributeError:
        raise LoraError(f"no layer {name!r}") from None
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() not in (2, 3, 4):
        raise LoraError(f"{name!r} is a {type(layer).__name__}, not a linear or convolution")
    return weight


def checked_deltas(module: nn.Module, pairs: Mapping[str, LoraPair]) -> dict[str, torch.Tensor]:
    """Each pair's product shaped as the weight of the layer it names in `module`; a missing
    layer or a shape that does not match is a LoraError naming it."""
    deltas = {}
    for name, pair in pairs.items():
        weight = layer_weight(module, name)
        delta = pair.delta()
        if weight.dim() == 3 and delta.dim() == 2:  # a Conv1d with kernel 1
            delta = delta[..., None]
        if weight.dim() == 4 and delta.dim() == 2:  # a 1x1 convolution stored as linear
            delta = delta[..., None, None]
        if delta.shape != weight.shape:
            raise LoraError(
                f"{name!r}: the adapter gives {tuple(delta.shape)}, the layer's weight is "
                f"{tuple(weight.shape)} (a LoRA made for another model?)"
            )
        deltas[name] = delta
    return deltas


@torch.no_grad()
def add_deltas(module: nn.Module, deltas: Mapping[str, torch.Tensor], scale: float = 1.0) -> None:
    """W <- W + scale * delta for each layer named, in float32, rounded once to W's dtype."""
    for name, delta in deltas.items():
        weight = layer_weight(module, name)
        weight.copy_((weight.float() + scale * delta.to(weight.device)).to(weight.dtype))


def merge_lora(module: nn.Module, pairs: Mapping[str, LoraPair], scale: float = 1.0) -> None:
    """Add `scale` times each pair's product to the weight of the layer it names in `module`.
    Every pair is checked before any weight changes (`checked_deltas`), so a LoRA that does not
    fit leaves the module as it was."""
    add_deltas(module, checked_deltas(module, pairs), scale)
