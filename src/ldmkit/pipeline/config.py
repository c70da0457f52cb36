"""DiffusionConfig: the denoiser, its schedule and objective, and the conditioners it takes."""

from dataclasses import dataclass, field
from typing import Any

from ldmkit.conditioning import AnyConditionerConfig
from ldmkit.diffusion import DiffusionLossConfig, ScheduleConfig
from ldmkit.unet import UNetConfig

# The flat keys configs had before conditioners were a list, as (kind, config key, dropout key),
# in the order those conditioners were built (the order training draws for them).
_FLAT = (
    ("class", "num_classes", "label_dropout"),
    ("text", "text", "caption_dropout"),
    ("clip", "clip", "caption_dropout"),
    ("layout", "layout", "layout_dropout"),
    ("spatial", "spatial", "spatial_dropout"),
)
_FLAT_DROPOUTS = {"label_dropout", "caption_dropout", "layout_dropout", "spatial_dropout"}
_FLAT_FIELD = {"text": "encoder", "clip": "encoder", "layout": "encoder", "spatial": "map"}


@dataclass(frozen=True)
class DiffusionConfig:
    """The denoiser, its noise schedule and objective, and how conditions reach it."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: DiffusionLossConfig = field(default_factory=DiffusionLossConfig)
    # Side of the square training latent (image size / f); the default size for sampling.
    latent_size: int = 16
    # Two more UNet input channels holding each latent pixel's x and y in [-1, 1] (CoordConv),
    # so cross-attention queries know where they are; layout models place objects with them.
    # Positions are those of the array the UNet sees (a tile, when sampling in tiles).
    coordinate_channels: bool = False
    # How conditions reach the UNet, each a tagged entry (`ldmkit.conditioning.registry`):
    # class labels, a trained text encoder, a frozen CLIP, a layout encoder, a concatenated map.
    # Empty: unconditional. A map combines with one of the others (hybrid conditioning).
    conditioners: tuple[AnyConditionerConfig, ...] = ()

    def __post_init__(self) -> None:
        if self.latent_size < 1:
            raise ValueError(f"latent_size must be >= 1, got {self.latent_size}")
        outputs = [fill for c in self.conditioners for fill in c.fills()]
        for output in set(outputs):
            if outputs.count(output) > 1:
                kinds = [c.kind for c in self.conditioners if output in c.fills()]
                raise ValueError(
                    f"conditioners {' and '.join(kinds)} both fill the UNet's {output!r} input; "
                    "keep one of them"
                )
        if {"y", "context"} <= {c.output for c in self.conditioners}:
            raise ValueError(
                "condition on one of classes, text, clip or layout (and a map), not "
                f"{' and '.join(c.kind for c in self.conditioners if c.output != 'concat')}"
            )
        for conditioner in self.conditioners:
            conditioner.check_unet(self.unet.context_dim, self.unet.num_classes)
        filled = {fill for c in self.conditioners for fill in c.fills()}
        if "y" not in filled and self.unet.num_classes is not None:
            raise ValueError(
                f"unet.num_classes={self.unet.num_classes}, but no class conditioner fills it; "
                "set unet.num_classes=null or add {kind: class, num_classes: N} to conditioners"
            )

    def conditioner(self, kind: str) -> AnyConditionerConfig | None:
        """The conditioner config of `kind`, or None."""
        return next((c for c in self.conditioners if c.kind == kind), None)

    @classmethod
    def upgrade_config(cls, data: dict[str, Any]) -> dict[str, Any]:
        """A config saved with the flat keys (num_classes, text, clip, layout, spatial and their
        dropouts) as the `conditioners` list, in the order they were built."""
        flat = [key for _, key, _ in _FLAT if key in data] + sorted(_FLAT_DROPOUTS & set(data))
        if not flat:
            return data
        if "conditioners" in data:
            raise ValueError(f"give conditioners or the older keys {', '.join(flat)}, not both")
        upgraded = {k: v for k, v in data.items() if k not in flat}
        entries: list[dict[str, Any]] = []
        for kind, key, dropout_key in _FLAT:
            value = data.get(key)
            if not value:  # absent, null or num_classes 0
                continue
            entry: dict[str, Any] = {"kind": kind}
            entry.update({"num_classes": value} if kind == "class" else {_FLAT_FIELD[kind]: value})
            if dropout_key in data:
                entry["dropout"] = data[dropout_key]
            entries.append(entry)
        upgraded["conditioners"] = entries
        return upgraded
