"""Captions through the paper's tau_theta: a tokenizer learned on the captions and a transformer
trained jointly with the UNet, whose tokens are the cross-attention context."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ldmkit.conditioning.prompt import PromptConditioner
from ldmkit.conditioning.text_encoder import TextEncoder, TextEncoderConfig
from ldmkit.conditioning.tokenizer import TextTokenizer

TOKENIZER_FILE = "tokenizer.json"


class TextConditioner(PromptConditioner):
    """Prompts -> tokenizer -> `TextEncoder` -> context (B, max_length, width)."""

    kind = "text"
    weights_file = "text_encoder.safetensors"

    def __init__(self, config: TextEncoderConfig, tokenizer: TextTokenizer, dropout: float = 0.1):
        super().__init__(dropout)
        if tokenizer.vocab_size > config.vocab_size:
            raise ValueError(
                f"the tokenizer has {tokenizer.vocab_size} tokens, more than "
                f"text.vocab_size={config.vocab_size}; raise text.vocab_size"
            )
        if tokenizer.max_length != config.max_length:
            raise ValueError(
                f"tokenizer max_length {tokenizer.max_length} != text.max_length "
                f"{config.max_length}"
            )
        self.tokenizer = tokenizer
        self.encoder = TextEncoder(config)

    def context(self, prompts: Sequence[str]) -> torch.Tensor:
        """Cross-attention context (B, max_length, width) of `prompts` ("" is the null one)."""
        ids = self.tokenizer(prompts)
        return self.encoder(ids.to(self.encoder.position_embedding.device))

    def trained_module(self) -> nn.Module:
        """The text transformer."""
        return self.encoder

    def save_files(self, directory: Any) -> None:
        """The tokenizer, beside the encoder's weights."""
        self.tokenizer.save(Path(directory) / TOKENIZER_FILE)
