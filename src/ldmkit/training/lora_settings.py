"""How a fine-tuning run adapts its model: LoRA adapters of a rank, or every weight."""

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class LoraSettings:
    """`rank` 0 fine-tunes every weight; > 0 trains rank-`rank` adapters on the UNet's `targets`
    (and the text encoder with `text_encoder`), scaled by `alpha` / rank (`alpha` 0: = rank).

    `targets`: "attention", the transformers' q, k, v and output projections (diffusers' LoRA
    scripts); "transformer", every linear layer of the transformer blocks with their proj_in /
    proj_out (kohya's LoRA); "all", those and the ResBlocks' and resamplers' convolutions
    (LoCon)."""

    rank: int = 0
    alpha: float = 0.0
    text_encoder: bool = False
    dropout: float = 0.0
    targets: Literal["attention", "transformer", "all"] = "attention"

    def __post_init__(self) -> None:
        if self.rank < 0:
            raise ValueError(f"lora.rank must be >= 0 (0 = full fine-tuning); got {self.rank}")
        if self.alpha < 0:
            raise ValueError(f"lora.alpha must be >= 0 (0 = the rank); got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora.dropout must be in [0, 1); got {self.dropout}")
        if self.text_encoder and not self.rank:
            raise ValueError("lora.text_encoder needs lora.rank > 0")
