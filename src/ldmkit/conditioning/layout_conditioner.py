"""Layouts (boxes with classes) as tokens read by a transformer trained with the UNet, whose
tokens are the cross-attention context (Rombach et al. 2022, 4.3.1)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
from ldmkit.conditioning.layout import Layout, LayoutConfig, LayoutEncoder, layout_tokens
from ldmkit.images import draw_layouts


@dataclass(frozen=True, kw_only=True)
class LayoutCondition(ConditionerConfig):
    """Layouts through a box-token transformer trained with the UNet; `dropout` (layout
    dropout) trains the empty layout as the null condition."""

    kind: Literal["layout"] = "layout"
    encoder: LayoutConfig = field(default_factory=LayoutConfig)
    output: ClassVar[str] = "context"

    def build(self, context: BuildContext) -> "LayoutConditioner":
        """A `LayoutConditioner`."""
        return LayoutConditioner(self.encoder, self.dropout)

    def prepare_training(
        self, run_dir: Any, data: Sequence[Mapping[str, Any]], data_name: str, fresh: bool
    ) -> None:
        """The data must carry layouts."""
        if len(data) and "layout" not in data[0]:
            raise ValueError(
                f"layout conditioning needs data with layouts (shapes items carry them); the "
                f"{data_name} data has none"
            )

    def check_unet(self, context_dim: int | None, class_rows: int | None) -> None:
        """The UNet's cross-attention width must be the encoder's."""
        if context_dim != self.encoder.width:
            raise ValueError(
                f"unet.context_dim must equal the layout encoder's width {self.encoder.width}; "
                f"it is {context_dim}"
            )


class LayoutConditioner(Conditioner):
    """Layouts -> (corner, corner, class) tokens -> `LayoutEncoder` -> context; the empty layout
    is the null condition, which `dropout` (layout dropout) trains."""

    kind = "layout"
    input_name = "layouts"
    description = "layout-conditional"
    weights_file = "layout_encoder.safetensors"

    def __init__(self, config: LayoutConfig, dropout: float = 0.1):
        super().__init__(dropout)
        self.config = config
        self.encoder = LayoutEncoder(config)

    def context(self, layouts: Sequence[Layout]) -> torch.Tensor:
        """Cross-attention context (B, 3 * max_objects, width) of `layouts` ([] is the null
        layout)."""
        ids = layout_tokens(layouts, self.config)
        return self.encoder(ids.to(self.encoder.position_embedding.device))

    def encode(self, values: Any, n: int, device: torch.device) -> Conditioning:
        """`n` layouts as context."""
        self.check_count(values, n)
        return {"context": self.context(values)}

    def null(self, cond: Conditioning, n: int, device: torch.device) -> Conditioning:
        """The empty layout's context for every sample."""
        return {"context": self.context([[] for _ in range(n)])}

    def preview(self, items: Items, generators: Generators, device: torch.device) -> Preview:
        """The items' layouts."""
        return Preview([list(item["layout"]) for item in items])

    def annotate(self, images: torch.Tensor, values: Any) -> torch.Tensor:
        """The requested boxes drawn over the samples."""
        return draw_layouts(images, values)

    def with_dropout(
        self, layouts: Sequence[Layout], generators: Sequence[torch.Generator] | None
    ) -> list[Layout]:
        """Replace a `dropout` fraction of the layouts by the empty layout."""
        drop = self.dropped(generators, len(layouts))
        return [[] if d else list(layout) for d, layout in zip(drop, layouts, strict=True)]

    def training_condition(
        self, batch: dict[str, Any], generators: Sequence[torch.Generator] | None
    ) -> Conditioning:
        """The batch's "layout", a `dropout` fraction replaced by the empty layout."""
        if "layout" not in batch:
            raise ValueError(
                "layout conditioning needs data with layouts (shapes items carry them)"
            )
        return {"context": self.context(self.with_dropout(batch["layout"], generators))}

    def trained_module(self) -> nn.Module:
        """The layout transformer."""
        return self.encoder
