"""Exponential moving average of a model's parameters (the weights used for sampling)."""

import torch
from torch import nn


class EMA(nn.Module):
    """Shadow copies s <- d * s + (1 - d) * p of every floating parameter, d warmed up."""

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay, self.warmup = decay, warmup
        self.names = [n for n, p in model.named_parameters() if p.dtype.is_floating_point]
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        params = dict(model.named_parameters())
        # Buffers named by position: parameter names contain dots, which buffer names cannot.
        for i, name in enumerate(self.names):
            self.register_buffer(f"shadow_{i}", params[name].detach().clone())

    def current_decay(self) -> float:
        """min(decay, (1 + n) / (10 + n)) with warm-up, else decay."""
        n = int(self.updates)
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    def shadows(self) -> list[torch.Tensor]:
        """The averaged weights, in the order of `names`."""
        return [getattr(self, f"shadow_{i}") for i in range(len(self.names))]

    def averaged_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """`model`'s state dict with the averaged weights in place of its trained ones (what a
        sampling copy or a saved checkpoint takes)."""
        state = dict(model.state_dict())
        state.update(zip(self.names, self.shadows(), strict=True))
        return state

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow weights towards `model`'s current parameters."""
        params = dict(model.named_parameters())
        shadow = self.shadows()
        current = [params[n].detach().to(s.dtype) for n, s in zip(self.names, shadow, strict=True)]
        torch._foreach_lerp_(shadow, current, 1.0 - self.current_decay())
        self.updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Write the shadow weights into `model` (e.g. a copy used for sampling)."""
        params = dict(model.named_parameters())
        for name, shadow in zip(self.names, self.shadows(), strict=True):
            params[name].copy_(shadow)
