"""Tiled denoising: a conditional model applied in overlapping latent windows whose outputs are
blended, so a latent of any size costs the memory of one window (patch-wise super-resolution of
large inputs, generation beyond the training size). A wrapper like guidance: samplers never know."""

from typing import Any

import torch

from ldmkit.nn import tiled_apply
from ldmkit.samplers.guidance import ConditionalModel


def tiled(model_fn: ConditionalModel, tile: int) -> ConditionalModel:
    """`model_fn` applied in overlapping latent tiles of side `tile` (a quarter overlap) whose
    outputs are blended: spatial conditions are cut like x_t, token conditions passed whole."""

    def apply(x: torch.Tensor, t: torch.Tensor, c: Any) -> torch.Tensor:
        def window(rows: slice, cols: slice) -> torch.Tensor:
            part = {k: v[..., rows, cols] if v.ndim == 4 else v for k, v in c.items()}
            return model_fn(x[..., rows, cols], t, part)

        return tiled_apply(window, *x.shape[-2:], tile=tile, overlap=tile // 4)

    return apply
