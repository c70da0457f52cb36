"""What every caption conditioner shares: prompts in, context tokens out, the empty prompt as the
null condition, caption dropout in training. Subclasses give `context(prompts)`."""

import warnings
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ldmkit.conditioning.conditioner import (
    Conditioner,
    Conditioning,
    Generators,
    Items,
    Preview,
)


def captions(data: Sequence[Mapping[str, Any]], data_name: str) -> list[str]:
    """Every caption of `data` ("" where an item has none); data without any is an error."""
    found = [data[i].get("caption") or "" for i in range(len(data))]
    if not any(found):
        raise ValueError(
            f"the {data_name} data has no captions; text conditioning needs captioned data "
            "(shapes, emoji, or an image folder with metadata.jsonl or .txt files)"
        )
    return found


class PromptWarning(UserWarning):
    """A prompt is not read as written: unknown words, or cut at the encoder's length."""


class PromptConditioner(Conditioner):
    """Prompts -> `context(prompts)` (B, tokens, width); "" is the null prompt, which
    `dropout` (caption dropout) trains."""

    input_name = "prompts"
    description = "text-conditional"

    @abstractmethod
    def context(self, prompts: Sequence[str]) -> torch.Tensor:
        """Cross-attention context (B, tokens, width) of `prompts`."""

    def encode(self, values: Any, n: int, device: torch.device) -> Conditioning:
        """`n` prompts as context; a `PromptWarning` says what the encoder loses of any of
        them (unknown words, a cut)."""
        self.check_count(values, n)
        for problem in self.problems(list(dict.fromkeys(values))):
            warnings.warn(problem, PromptWarning, stacklevel=2)
        return {"context": self.context(list(values))}

    def problems(self, prompts: Sequence[str]) -> list[str]:
        """What the text encoder loses of each prompt, one line per prompt that loses something
        (none by default)."""
        return []

    def null(self, cond: Conditioning, n: int, device: torch.device) -> Conditioning:
        """The empty prompt's context for every sample."""
        return {"context": self.context([""] * n)}

    def training_condition(
        self, batch: dict[str, Any], generators: Sequence[torch.Generator] | None
    ) -> Conditioning:
        """The batch's "caption", a `dropout` fraction replaced by the empty prompt."""
        captions = batch["caption"]
        drop = self.dropped(generators, len(captions))
        kept = ["" if d else c for d, c in zip(drop, captions, strict=True)]
        return {"context": self.context(kept)}

    def preview(self, items: Items, generators: Generators, device: torch.device) -> Preview:
        """The items' captions."""
        return Preview([item["caption"] for item in items])
