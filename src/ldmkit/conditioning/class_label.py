"""Class labels: the UNet's learned class embedding, with one extra entry for the null class."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

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
class ClassCondition(ConditionerConfig):
    """Class labels 0..num_classes-1 through the UNet's class embedding, which has one more row
    (the null class, trained by `dropout`)."""

    kind: Literal["class"] = "class"
    num_classes: int = 0
    output: ClassVar[str] = "y"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_classes < 1:
            raise ValueError(f"class num_classes must be >= 1, got {self.num_classes}")

    def build(self, context: BuildContext) -> "ClassConditioner":
        """A `ClassConditioner`."""
        return ClassConditioner(self.num_classes, self.dropout)

    def check_unet(self, context_dim: int | None, class_rows: int | None) -> None:
        """The UNet's class table must have num_classes + 1 rows."""
        if class_rows != self.num_classes + 1:
            raise ValueError(
                f"unet.num_classes must be {self.num_classes + 1} for {self.num_classes} classes "
                f"(one extra entry is the null class); it is {class_rows}"
            )


class ClassConditioner(Conditioner):
    """Labels 0..num_classes-1 reach the UNet as `y`; index `num_classes` is the learned null
    class (the UNet's class table has num_classes + 1 rows), which `dropout` trains."""

    kind = "class"
    input_name = "labels"
    description = "class-conditional"

    def __init__(self, num_classes: int, dropout: float = 0.1):
        super().__init__(dropout)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes

    @property
    def null_class(self) -> int:
        """Index of the learned unconditional class."""
        return self.num_classes

    def check(self, labels: torch.Tensor) -> None:
        """Raise a ValueError unless every label lies in 0..num_classes-1."""
        if (labels < 0).any() or (labels >= self.num_classes).any():
            raise ValueError(
                f"labels must lie in 0..{self.num_classes - 1} for this model; the data "
                "has none or others (use data.single_object=true for shapes classes)"
            )

    def encode(self, values: Any, n: int, device: torch.device) -> Conditioning:
        """`n` labels (a tensor or a list of ints) as `y`."""
        self.check_count(values, n)
        labels = torch.as_tensor(values, device=device)
        self.check(labels)
        return {"y": labels}

    def null(self, cond: Conditioning, n: int, device: torch.device) -> Conditioning:
        """The null class for every sample."""
        return {"y": torch.full((n,), self.null_class, device=device, dtype=torch.long)}

    def with_dropout(
        self, labels: torch.Tensor, generators: Sequence[torch.Generator] | None = None
    ) -> torch.Tensor:
        """Check the labels and replace a `dropout` fraction by the null class."""
        self.check(labels)
        dropped = self.dropped(generators, len(labels))
        drop = torch.tensor(dropped, dtype=torch.bool, device=labels.device)
        return torch.where(drop, torch.full_like(labels, self.null_class), labels)

    def training_condition(
        self, batch: dict[str, Any], generators: Sequence[torch.Generator] | None
    ) -> Conditioning:
        """The batch's "label", a `dropout` fraction replaced by the null class."""
        labels = torch.as_tensor(batch["label"])
        return {"y": self.with_dropout(labels, generators)}

    def preview(self, items: Items, generators: Generators, device: torch.device) -> Preview:
        """Classes 0, 1, 2, ... (not the items' labels: a snapshot shows the range)."""
        return Preview(torch.arange(len(items)) % self.num_classes)
