"""The paper's tau_theta for text: a transformer encoder trained jointly with the UNet, whose
output tokens (B, max_length, width) are the cross-attention context (Rombach et al. 2022, 3.3)."""

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class TextEncoderConfig:
    """Size of the text transformer; `width` must equal the UNet's `context_dim`."""

    vocab_size: int = 1000  # upper bound: the tokenizer trained on the captions may use fewer
    width: int = 128
    layers: int = 2
    heads: int = 4
    max_length: int = 77
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "width", "layers", "heads", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"text.{name} must be >= 1, got {getattr(self, name)}")
        if self.width % self.heads:
            raise ValueError(f"text.width {self.width} must be divisible by heads {self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"text.dropout must be in [0, 1), got {self.dropout}")


class TextEncoder(nn.Module):
    """Token and position embeddings, pre-norm transformer layers (SDPA), final LayerNorm."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.position_embedding = nn.Parameter(torch.zeros(config.max_length, config.width))
        nn.init.normal_(self.position_embedding, std=0.01)
        layer = nn.TransformerEncoderLayer(
            config.width,
            config.heads,
            4 * config.width,
            config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(config.width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids (B, L <= max_length) -> context tokens (B, L, width)."""
        if ids.shape[1] > self.config.max_length:
            raise ValueError(f"{ids.shape[1]} tokens exceed max_length {self.config.max_length}")
        x = self.token_embedding(ids) + self.position_embedding[: ids.shape[1]]
        if not any(hasattr(m, "lora_A") for m in self.layers.modules()):
            return self.final_norm(self.layers(x))
        # LoRA adapters on the feed-forward layers (`training/lora.py`): torch's fused
        # inference path reads the layers' weights directly and would skip them.
        fast = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            return self.final_norm(self.layers(x))
        finally:
            torch.backends.mha.set_fastpath_enabled(fast)
