"""Captions through the BERT-style text transformer of the paper's text-to-image LDM, tokenised
into word pieces by BERT's uncased vocabulary (`vocab.txt`, 30522 lines), read from a local
file: ldmkit does not ship it and nothing downloads it."""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from ldmkit.conditioning.bert_encoder import BertEncoder, BertEncoderConfig
from ldmkit.conditioning.conditioner import BuildContext, ConditionerConfig
from ldmkit.conditioning.prompt import PromptConditioner

VOCAB_FILE = "bert_vocab.txt"  # the copy a checkpoint folder keeps
VOCAB_HINT = (
    "BERT's uncased word-piece vocabulary (bert-base-uncased's vocab.txt, 30522 lines; "
    "ldmkit does not download it): put it beside the checkpoint as vocab.txt"
)


@dataclass(frozen=True, kw_only=True)
class BertCondition(ConditionerConfig):
    """Captions through a `BertEncoder` (trained with the UNet, as in the paper) over the
    word pieces of the vocabulary file `vocab`."""

    kind: Literal["bert"] = "bert"
    encoder: BertEncoderConfig = field(default_factory=BertEncoderConfig)
    vocab: str = "vocab.txt"
    output: ClassVar[str] = "context"

    def build(self, context: BuildContext) -> "BertConditioner":
        """A `BertConditioner` (the vocabulary a checkpoint keeps, else `vocab`)."""
        vocab = context.loaded.get(self.kind) or self.vocab
        return BertConditioner(self.encoder, Path(vocab), self.dropout)

    def check_unet(self, context_dim: int | None, class_rows: int | None) -> None:
        """The UNet must cross-attend at the encoder's width."""
        if context_dim != self.encoder.width:
            raise ValueError(
                f"unet.context_dim must be {self.encoder.width} (the BERT encoder's width); "
                f"it is {context_dim}"
            )

    def load_files(self, directory: Any) -> str | None:
        """The vocabulary a checkpoint folder keeps."""
        path = Path(directory) / VOCAB_FILE
        return str(path) if path.is_file() else None


def word_pieces(path: Path) -> dict[str, int]:
    """{word piece: id} from a `vocab.txt` (one piece per line, the line number its id) or a
    tokenizers `tokenizer.json` holding a WordPiece model."""
    if path.suffix == ".json":
        model = json.loads(path.read_text(encoding="utf-8")).get("model", {})
        if model.get("type") != "WordPiece":
            raise ValueError(f"{path} holds no WordPiece vocabulary: {VOCAB_HINT}")
        return {str(piece): int(index) for piece, index in model["vocab"].items()}
    pieces = path.read_text(encoding="utf-8").splitlines()
    return {piece: index for index, piece in enumerate(pieces)}


class BertConditioner(PromptConditioner):
    """Prompts -> word pieces ([CLS] ... [SEP], padded to max_length) -> the encoder's tokens."""

    kind = "bert"
    weights_file = "bert.safetensors"

    def __init__(self, config: BertEncoderConfig, vocab: Path, dropout: float = 0.0):
        super().__init__(dropout)
        if not vocab.is_file():
            raise FileNotFoundError(f"no word-piece vocabulary at {vocab}: {VOCAB_HINT}")
        from transformers import BertTokenizer

        self.vocab = vocab
        self.tokenizer = BertTokenizer(vocab=word_pieces(vocab), do_lower_case=True)
        if len(self.tokenizer) != config.vocab_size:
            raise ValueError(
                f"{vocab} has {len(self.tokenizer)} word pieces; the encoder reads "
                f"{config.vocab_size}: {VOCAB_HINT}"
            )
        self.encoder = BertEncoder(config)

    def trained_module(self) -> nn.Module:
        """The text transformer."""
        return self.encoder

    def save_files(self, directory: Any) -> None:
        """The vocabulary as vocab.txt lines, so that the checkpoint folder stands alone."""
        table = word_pieces(self.vocab)
        lines = sorted(table, key=table.__getitem__)
        (Path(directory) / VOCAB_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")

    def _ids(self, prompts: Sequence[str]) -> dict[str, Any]:
        return self.tokenizer(
            list(prompts),
            padding="max_length",
            truncation=True,
            max_length=self.encoder.config.max_length,
            return_overflowing_tokens=False,
            return_tensors="pt",
        )

    def problems(self, prompts: Sequence[str]) -> list[str]:
        """Prompts cut at max_length word pieces, or with words the vocabulary lacks."""
        limit = self.encoder.config.max_length - 2  # [CLS] and [SEP]
        found = []
        for prompt in prompts:
            pieces = self.tokenizer.tokenize(prompt)
            if len(pieces) > limit:
                found.append(f"prompt {prompt[:40]!r}: cut to {limit} word pieces")
            if self.tokenizer.unk_token in pieces:
                found.append(f"prompt {prompt[:40]!r}: words the vocabulary lacks ([UNK])")
        return found

    def context(self, prompts: Sequence[str]) -> torch.Tensor:
        """The encoder's tokens of `prompts` (B, max_length, width)."""
        device = self.encoder.embed_tokens.weight.device
        return self.encoder(self._ids(prompts)["input_ids"].to(device))
