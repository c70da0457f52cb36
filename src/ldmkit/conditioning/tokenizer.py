"""A WordPiece tokenizer trained on a dataset's captions (the `tokenizers` library), padded or
cut to a fixed length; saved as one JSON file inside the checkpoint."""

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

PAD, UNK, CLS, SEP = "[PAD]", "[UNK]", "[CLS]", "[SEP]"
SPECIAL_TOKENS = [PAD, UNK, CLS, SEP]  # ids 0..3, in this order


class TextTokenizer:
    """Text -> token ids (B, max_length): [CLS] words [SEP], then [PAD] (id 0) to the length."""

    def __init__(self, tokenizer: Tokenizer, max_length: int = 77):
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2 ([CLS] and [SEP]), got {max_length}")
        for i, token in enumerate(SPECIAL_TOKENS):
            if tokenizer.token_to_id(token) != i:
                raise ValueError(
                    f"not an ldmkit tokenizer: {token} must have id {i}; train one with "
                    "TextTokenizer.train(captions)"
                )
        tokenizer.enable_truncation(max_length)
        tokenizer.enable_padding(pad_id=0, pad_token=PAD, length=max_length)
        self.tokenizer, self.max_length = tokenizer, max_length

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int = 1000, max_length: int = 77
    ) -> "TextTokenizer":
        """Learn a lower-cased WordPiece vocabulary of at most `vocab_size` entries."""
        tokenizer = Tokenizer(models.WordPiece(unk_token=UNK))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False
        )
        tokenizer.train_from_iterator(texts, trainer=trainer)
        # The trainer numbers tokens in an order that varies between processes (ties broken by
        # hash order); renumber them sorted, so the same captions always give the same ids.
        learned = tokenizer.get_vocab()
        ordered = SPECIAL_TOKENS + sorted(t for t in learned if t not in SPECIAL_TOKENS)
        vocab = {token: i for i, token in enumerate(ordered)}
        tokenizer.model = models.WordPiece(vocab, unk_token=UNK)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{CLS} $A {SEP}", special_tokens=[(CLS, 2), (SEP, 3)]
        )
        return cls(tokenizer, max_length)

    @classmethod
    def from_file(cls, path: Path, max_length: int = 77) -> "TextTokenizer":
        """A tokenizer saved by `save` (or any `tokenizers` JSON with the same special tokens)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer at {path}; train one with TextTokenizer.train")
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:  # the library raises its own exception types
            raise ValueError(f"{path} is not a tokenizers JSON file: {error}") from error
        return cls(tokenizer, max_length)

    def save(self, path: Path) -> None:
        self.tokenizer.save(str(path))

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.get_vocab_size())

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """Token ids (len(texts), max_length), long."""
        if isinstance(texts, str):
            raise TypeError("pass a list of strings, not one string")
        encodings = self.tokenizer.encode_batch(list(texts))
        return torch.tensor([e.ids for e in encodings], dtype=torch.long)

    def problems(self, texts: Sequence[str]) -> list[str]:
        """What this tokenizer loses of each text, one line per text that loses something:
        words outside its vocabulary (read as [UNK]) and the point where a text longer than
        `max_length` tokens is cut."""
        found = []
        for text, encoding in zip(texts, self.tokenizer.encode_batch(list(texts)), strict=True):
            unknown = [
                text[start:end]
                for token, (start, end) in zip(encoding.tokens, encoding.offsets, strict=True)
                if token == UNK
            ]
            lost = []
            if unknown:
                words = ", ".join(dict.fromkeys(unknown))
                lost.append(f"unknown words read as {UNK}: {words}")
            if encoding.overflowing:
                kept = max((end for _, end in encoding.offsets), default=0)
                lost.append(
                    f"cut to {self.max_length} tokens after {text[max(0, kept - 30) : kept]!r} "
                    f"(character {kept} of {len(text)})"
                )
            if lost:
                found.append(f"prompt {_short(text)}: {'; '.join(lost)}")
        return found

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Token ids (B, L) back to text (special tokens dropped)."""
        return self.tokenizer.decode_batch(ids.tolist())


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
