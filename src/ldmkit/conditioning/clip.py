"""Captions through a frozen CLIP text encoder (Stable Diffusion style), read from a local
directory; nothing is trained or copied into checkpoints (the config names the directory)."""

from collections.abc import Sequence

import torch

from ldmkit.conditioning.clip_text import ClipTextConfig, ClipTextEncoder
from ldmkit.conditioning.prompt import PromptConditioner


class ClipConditioner(PromptConditioner):
    """Prompts -> frozen CLIP token states (B, max_length, width) as context."""

    kind = "clip"

    def __init__(
        self, config: ClipTextConfig, dropout: float = 0.1, encoder: ClipTextEncoder | None = None
    ):
        """`encoder` reuses an already loaded CLIP (else `config` is loaded)."""
        super().__init__(dropout)
        self.clip = encoder if encoder is not None else ClipTextEncoder(config)

    @property
    def width(self) -> int:
        """The context's width (the UNet's `context_dim` must equal it)."""
        return self.clip.width

    def context(self, prompts: Sequence[str]) -> torch.Tensor:
        """CLIP's token states of `prompts`."""
        return self.clip(prompts)
