"""Layouts as the bounding-box token sequences of the paper's released layout-to-image model
(`layout2img-openimages256`, CompVis `cond_stage_key: coordinates_bbox`), read by a BERT-style
transformer (`BertEncoder`) over a vocabulary of `tokens` ids without a tokenizer.

One id space holds both kinds of token: a corner (x, y) in [0, 1]^2 snaps to the nearest point
of an s x s grid, s = floor(sqrt(tokens)), and is the id row * s + column; an object's class is
its class number. Each object is three ids (class, top-left corner, bottom-right corner); empty
object slots are three `tokens - 1` ids; with `encode_crop` the sequence ends with the crop's
two corners (the whole image at sampling time). The class numbers are the training data's
category numbers; `labels` (one name per class number) lets a layout name them.

ldmkit's own layout conditioning (`layout.py`) is a different encoding, trained with Fourier
features; this one exists to run the released checkpoint.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from ldmkit.conditioning.bert_encoder import BertEncoder, BertEncoderConfig
from ldmkit.conditioning.conditioner import (
    BuildContext,
    Conditioner,
    ConditionerConfig,
    Conditioning,
    Generators,
    Items,
    Preview,
)
from ldmkit.conditioning.layout import Layout, check_layout
from ldmkit.images import draw_layouts

WHOLE_IMAGE = (0.0, 0.0, 1.0, 1.0)


@dataclass(frozen=True, kw_only=True)
class BBoxTokensCondition(ConditionerConfig):
    """Layouts as box-token sequences through a `BertEncoder` (LDM-VQ-4's OpenImages layout
    model: 8192 ids, 30 objects and the crop = 92 tokens, width 512, 16 layers). `labels` names
    the class numbers, in order, where the user has them."""

    kind: Literal["bbox-tokens"] = "bbox-tokens"
    encoder: BertEncoderConfig = field(
        default_factory=lambda: BertEncoderConfig(
            vocab_size=8192, width=512, layers=16, mlp_width=2048, max_length=92
        )
    )
    max_objects: int = 30
    encode_crop: bool = True
    labels: tuple[str, ...] = ()
    dropout: float = 0.0
    output: ClassVar[str] = "context"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_objects < 1:
            raise ValueError(f"bbox-tokens max_objects must be >= 1, got {self.max_objects}")
        if self.length != self.encoder.max_length:
            raise ValueError(
                f"bbox-tokens: {self.max_objects} objects (3 ids each)"
                f"{' and the crop (2)' if self.encode_crop else ''} make {self.length} ids, but "
                f"the encoder reads {self.encoder.max_length} positions"
            )
        if len(self.labels) > self.none:
            raise ValueError(f"bbox-tokens: {len(self.labels)} labels exceed the {self.none} ids")

    @property
    def length(self) -> int:
        """Ids per layout."""
        return 3 * self.max_objects + (2 if self.encode_crop else 0)

    @property
    def sections(self) -> int:
        """The corner grid's side."""
        return math.isqrt(self.encoder.vocab_size)

    @property
    def none(self) -> int:
        """The id of an empty slot (the vocabulary's last)."""
        return self.encoder.vocab_size - 1

    @property
    def classes(self) -> int:
        """How many class numbers a layout may use: the labels', else every id but `none`."""
        return len(self.labels) or self.none

    def build(self, context: BuildContext) -> "BBoxTokensConditioner":
        """A `BBoxTokensConditioner` with a fresh encoder."""
        return BBoxTokensConditioner(self)

    def check_unet(self, context_dim: int | None, class_rows: int | None) -> None:
        """The UNet must cross-attend at the encoder's width."""
        if context_dim != self.encoder.width:
            raise ValueError(
                f"unet.context_dim must be {self.encoder.width} (the box-token encoder's "
                f"width); it is {context_dim}"
            )

    def class_id(self, name: str) -> int:
        """The class number `labels` gives `name` (case-insensitive)."""
        if not self.labels:
            raise ValueError(
                f"class {name!r}: this model's classes have no names; give class numbers, or "
                "keep a labels.txt (one name per line, line n naming class n) beside the "
                "checkpoint"
            )
        lowered = [label.lower() for label in self.labels]
        if name.lower() not in lowered:
            raise ValueError(f"class {name!r} is not one of this model's {len(self.labels)} labels")
        return lowered.index(name.lower())


def corner_token(x: float, y: float, config: BBoxTokensCondition) -> int:
    """The id of the grid point nearest (x, y) (Python's round: half to even, as trained)."""
    last = config.sections - 1
    return round(y * last) * config.sections + round(x * last)


def bbox_token_ids(layouts: Sequence[Layout], config: BBoxTokensCondition) -> torch.Tensor:
    """(B, length) ids: per object (class, top-left, bottom-right) in the given order, empty
    slots, then the whole image as the crop."""
    ids = torch.full((len(layouts), config.length), config.none, dtype=torch.long)
    for row, layout in enumerate(layouts):
        for slot, (class_id, (x0, y0, x1, y1)) in enumerate(layout):
            triple = [class_id, corner_token(x0, y0, config), corner_token(x1, y1, config)]
            ids[row, 3 * slot : 3 * slot + 3] = torch.tensor(triple)
        if config.encode_crop:
            x0, y0, x1, y1 = WHOLE_IMAGE
            crop = [corner_token(x0, y0, config), corner_token(x1, y1, config)]
            ids[row, -2:] = torch.tensor(crop)
    return ids


class BBoxTokensConditioner(Conditioner):
    """Layouts -> box-token ids -> `BertEncoder` states as context. The released model was
    trained without a null layout, so it samples unguided."""

    kind = "bbox-tokens"
    input_name = "layouts"
    description = "layout-conditional"
    weights_file = "bbox_encoder.safetensors"

    def __init__(self, config: BBoxTokensCondition):
        super().__init__(config.dropout)
        self.config = config
        self.encoder = BertEncoder(config.encoder)

    @property
    def can_guide(self) -> bool:
        """No trained null layout."""
        return False

    def guide_hint(self) -> str:
        return "this layout model was trained without an empty layout; sample with guidance 1"

    def trained_module(self) -> nn.Module:
        """The box-token transformer."""
        return self.encoder

    def context(self, layouts: Sequence[Layout]) -> torch.Tensor:
        """(B, length, width) context of checked layouts."""
        checked = [check_layout(layout, self.config) for layout in layouts]
        ids = bbox_token_ids(checked, self.config)
        return self.encoder(ids.to(self.encoder.embed_tokens.weight.device))

    def encode(self, values: Any, n: int, device: torch.device) -> Conditioning:
        """`n` layouts as context."""
        self.check_count(values, n)
        return {"context": self.context(values)}

    def null(self, cond: Conditioning, n: int, device: torch.device) -> Conditioning:
        """The empty layout (untrained: `can_guide` is false, so guidance never uses it)."""
        return {"context": self.context([[] for _ in range(n)])}

    def training_condition(
        self, batch: dict[str, Any], generators: Sequence[torch.Generator] | None
    ) -> Conditioning:
        """The batch's "layout" (fine-tuning the released model)."""
        if "layout" not in batch:
            raise ValueError("bbox-tokens conditioning needs data with layouts")
        return {"context": self.context(batch["layout"])}

    def preview(self, items: Items, generators: Generators, device: torch.device) -> Preview:
        """The items' layouts."""
        return Preview([list(item["layout"]) for item in items])

    def annotate(self, images: torch.Tensor, values: Any) -> torch.Tensor:
        """The requested boxes drawn over the samples."""
        return draw_layouts(images, values)
