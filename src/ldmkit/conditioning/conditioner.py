"""The conditioner protocol: one way a condition y reaches the denoiser (Rombach et al. 2022, 3.3).

Each conditioning mode (a class label, a caption through a trained or a frozen text encoder, a
layout, a spatially aligned map) is one `Conditioner` with the same small surface:

- `input_name`: the keyword its values arrive under (`LatentDiffusion.sample(prompts=...)`);
- `encode(values, n, device)`: those values, checked, as a `Conditioning` for the denoiser;
- `null(cond, n, device)`: its null condition, the unconditional branch of guidance;
- `training_condition(batch, generators)`: a training batch's condition with its dropout
  applied, each sample's draws from its own generator (so a split batch draws the same);
- `trained_module()`, `weights_file`: what it trains with the UNet and where a checkpoint keeps it.

The pipeline holds a list of conditioners and merges their outputs; hybrid conditioning (a class
or a caption by cross-attention plus a map by concatenation) is two entries. A new mode is one
file with a subclass and its entry in `ldmkit.pipeline.conditioners`; captions share
`PromptConditioner` (`prompt.py`).
"""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

# What the denoiser takes, any key absent: "y" class labels (B,), "context" cross-attention
# tokens (B, M, d), "concat" channels concatenated with z_t (B, k, h, w).
Conditioning = dict[str, torch.Tensor]
KEYS = ("y", "context", "concat")


class Conditioner(nn.Module, ABC):
    """One conditioning mode: its values in, a `Conditioning` out, and its null condition."""

    kind: ClassVar[str]  # the tag that names it in configs and messages
    input_name: ClassVar[str]  # the keyword its values arrive under, e.g. "prompts"
    description: ClassVar[str]  # for messages: "text-conditional"
    # Whether guidance nulls it when another conditioner guides too; a spatial map is kept in
    # both branches of a hybrid model, which is guided by its class or caption.
    nulled_in_hybrid: ClassVar[bool] = True
    # The checkpoint file of `trained_module()`'s weights, when it has one.
    weights_file: ClassVar[str | None] = None

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{self.kind} dropout must be in [0, 1), got {dropout}")
        self.dropout = dropout

    @abstractmethod
    def encode(self, values: Any, n: int, device: torch.device) -> Conditioning:
        """`n` values (labels, prompts, ...), checked, as the denoiser's inputs on `device`."""

    @abstractmethod
    def null(self, cond: Conditioning, n: int, device: torch.device) -> Conditioning:
        """The null condition for `n` samples (guidance's unconditional branch), given `cond`."""

    @abstractmethod
    def training_condition(
        self, batch: dict[str, Any], generators: Sequence[torch.Generator] | None
    ) -> Conditioning:
        """The condition of a training batch, a `dropout` fraction replaced by the null one."""

    @property
    def name(self) -> str:
        """How messages name it (its `kind`, or a finer one)."""
        return self.kind

    @property
    def can_guide(self) -> bool:
        """Whether its null condition was trained (guidance other than 1 needs it)."""
        return True

    def guide_hint(self) -> str:
        """How to get a null condition when `can_guide` is false."""
        return ""

    def concat_channels(self, z_channels: int) -> int:
        """Channels it concatenates with a latent of `z_channels` (0: none)."""
        return 0

    def trained_module(self) -> nn.Module | None:
        """The network trained jointly with the UNet (tau_theta), if any."""
        return None

    def save_files(self, directory: Any) -> None:
        """Write what it needs besides `trained_module()`'s weights (a tokenizer) to a
        checkpoint folder."""

    def dropped(self, generators: Sequence[torch.Generator] | None, n: int) -> list[bool]:
        """Which of `n` training samples get the null condition: one draw from each generator
        (or from the global generator without them)."""
        if generators is None:
            draws = torch.rand(n).tolist()
        else:
            draws = [float(torch.rand(1, generator=g)) for g in generators]
        return [draw < self.dropout for draw in draws]

    def check_count(self, values: Sequence[Any] | torch.Tensor | None, n: int) -> None:
        """Raise a ValueError unless `values` holds one value for each of `n` samples."""
        if values is None or len(values) != n:
            raise ValueError(f"this model is {self.description}: pass {n} {self.input_name}")
