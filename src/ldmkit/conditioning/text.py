"""Captions through the paper's tau_theta: a tokenizer learned on the captions and a transformer
trained jointly with the UNet, whose tokens are the cross-attention context."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from ldmkit.conditioning.conditioner import BuildContext, ConditionerConfig
from ldmkit.conditioning.prompt import PromptConditioner, captions
from ldmkit.conditioning.text_encoder import TextEncoder, TextEncoderConfig
from ldmkit.conditioning.tokenizer import TextTokenizer

TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True, kw_only=True)
class TextCondition(ConditionerConfig):
    """Captions through a transformer trained with the UNet (its tokenizer is learned on the
    captions); `dropout` (caption dropout) trains the empty prompt as the null condition."""

    kind: Literal["text"] = "text"
    encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    # A tokenizer.json to train with instead of learning one on the captions. WordPiece
    # training breaks ties between equally frequent merges in hash order, so two fresh runs may
    # learn different vocabularies; pin one to repeat a run exactly.
    tokenizer: str = ""
    output: ClassVar[str] = "context"

    def build(self, context: BuildContext) -> "TextConditioner":
        """A `TextConditioner` with the tokenizer loaded under "text"."""
        tokenizer = context.loaded.get(self.kind)
        if tokenizer is None:
            raise ValueError("a text-conditional model needs its tokenizer (tokenizer=)")
        return TextConditioner(self.encoder, tokenizer, self.dropout)

    def check_unet(self, context_dim: int | None, class_rows: int | None) -> None:
        """The UNet's cross-attention width must be the encoder's."""
        if context_dim != self.encoder.width:
            raise ValueError(
                f"unet.context_dim must equal the text encoder's width {self.encoder.width}; "
                f"it is {context_dim}"
            )

    def load_files(self, directory: Any) -> TextTokenizer:
        """The tokenizer saved beside the encoder's weights."""
        return TextTokenizer.from_file(Path(directory) / TOKENIZER_FILE, self.encoder.max_length)

    def prepare_training(
        self, run_dir: Any, data: Sequence[Mapping[str, Any]], data_name: str, fresh: bool
    ) -> None:
        """The run's tokenizer: `tokenizer` if set, else one learned on the captions."""
        path = Path(run_dir) / TOKENIZER_FILE
        if not fresh and path.is_file():
            return
        max_length = self.encoder.max_length
        if self.tokenizer:
            TextTokenizer.from_file(Path(self.tokenizer), max_length).save(path)
        else:
            learned = TextTokenizer.train(
                captions(data, data_name), self.encoder.vocab_size, max_length
            )
            learned.save(path)


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

    def problems(self, prompts: Sequence[str]) -> list[str]:
        """Unknown words and cuts (`TextTokenizer.problems`)."""
        return self.tokenizer.problems(prompts)

    def resource(self) -> TextTokenizer:
        """Its tokenizer."""
        return self.tokenizer

    def save_files(self, directory: Any) -> None:
        """The tokenizer, beside the encoder's weights."""
        self.tokenizer.save(Path(directory) / TOKENIZER_FILE)
