"""Class labels as one cross-attended token: a learned table of class embeddings whose row is
the context (the CompVis `ClassEmbedder` of the class-conditional ImageNet LDMs, which feed
classes through cross-attention rather than the UNet's class embedding)."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from ldmkit.conditioning.conditioner import (
    BuildContext,
    Conditioner,
    ConditionerConfig,
    Conditioning,
    Generators,
    Items,
    Preview,
)


@dataclass(frozen=True, kw_only=True)
class ClassTokensCondition(ConditionerConfig):
    """Labels 0..num_classes-1 looked up in a learned (num_classes, width) table; the row is
    the UNet's context (one token). `null_class` is the row trained as the unconditional class
    (the table's last for the 1001-row ImageNet models), None where there is none."""

    kind: Literal["class-tokens"] = "class-tokens"
    num_classes: int = 1000
    width: int = 512
    null_class: int | None = None
    dropout: float = 0.0
    output: ClassVar[str] = "context"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_classes < 1 or self.width < 1:
            raise ValueError(
                f"class-tokens num_classes and width must be >= 1, got {self.num_classes}, "
                f"{self.width}"
            )
        if self.null_class is not None and not 0 <= self.null_class < self.num_classes:
            raise ValueError(f"null_class must lie in 0..{self.num_classes - 1} or be None")
        if self.dropout and self.null_class is None:
            raise ValueError("a class-tokens dropout trains the null class: set null_class")

    def build(self, context: BuildContext) -> "ClassTokensConditioner":
        """A `ClassTokensConditioner` with a fresh table."""
        return ClassTokensConditioner(self)

    def check_unet(self, context_dim: int | None, class_rows: int | None) -> None:
        """The UNet must cross-attend at the table's width."""
        if context_dim != self.width:
            raise ValueError(
                f"unet.context_dim must be {self.width} (the class table's width); it is "
                f"{context_dim}"
            )


class ClassTokensConditioner(Conditioner):
    """Labels -> their table rows (B, 1, width) as context; the null class's row for guidance."""

    kind = "class-tokens"
    input_name = "labels"
    description = "class-conditional"
    weights_file = "class_embedding.safetensors"

    def __init__(self, config: ClassTokensCondition):
        super().__init__(config.dropout)
        self.config = config
        self.embedding = nn.Embedding(config.num_classes, config.width)

    @property
    def num_classes(self) -> int:
        """The classes a user may ask for (the null class excluded when it is the last row)."""
        null = self.config.null_class
        return self.config.num_classes - (1 if null == self.config.num_classes - 1 else 0)

    @property
    def can_guide(self) -> bool:
        """Only with a trained null class."""
        return self.config.null_class is not None

    def guide_hint(self) -> str:
        return "this class table has no null class; sample with guidance 1"

    def trained_module(self) -> nn.Module:
        """The table, trained with the UNet."""
        return self.embedding

    def _tokens(self, labels: torch.Tensor) -> torch.Tensor:
        return self.embedding(labels.to(self.embedding.weight.device).long())[:, None]

    def encode(self, values: Any, n: int, device: torch.device) -> Conditioning:
        """`n` labels (a tensor or a list of ints) as (n, 1, width) context."""
        self.check_count(values, n)
        labels = torch.as_tensor(values, device=device)
        if (labels < 0).any() or (labels >= self.num_classes).any():
            raise ValueError(f"labels must lie in 0..{self.num_classes - 1} for this model")
        return {"context": self._tokens(labels)}

    def null(self, cond: Conditioning, n: int, device: torch.device) -> Conditioning:
        """The null class's token for every sample."""
        if self.config.null_class is None:
            raise ValueError(self.guide_hint())
        labels = torch.full((n,), self.config.null_class, device=device, dtype=torch.long)
        return {"context": self._tokens(labels)}

    def training_condition(
        self, batch: dict[str, Any], generators: Sequence[torch.Generator] | None
    ) -> Conditioning:
        """The batch's "label" tokens, a `dropout` fraction replaced by the null class's."""
        labels = torch.as_tensor(batch["label"])
        if self.config.null_class is not None:
            drop = torch.tensor(self.dropped(generators, len(labels)), device=labels.device)
            labels = torch.where(drop, torch.full_like(labels, self.config.null_class), labels)
        return {"context": self._tokens(labels)}

    def preview(self, items: Items, generators: Generators, device: torch.device) -> Preview:
        """Classes 0, 1, 2, ..."""
        return Preview(torch.arange(len(items)) % self.num_classes)
