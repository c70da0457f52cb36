"""DiffusionConfig: the denoiser, its schedule and objective, and how conditions enter."""

from dataclasses import dataclass, field

from ldmkit.conditioning import ClipTextConfig, LayoutConfig, SpatialConfig, TextEncoderConfig
from ldmkit.diffusion import DiffusionLossConfig, ScheduleConfig
from ldmkit.unet import UNetConfig


@dataclass(frozen=True)
class DiffusionConfig:
    """The denoiser, its noise schedule and objective, and how classes condition it."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: DiffusionLossConfig = field(default_factory=DiffusionLossConfig)
    # Class-conditional when > 0: labels 0..num_classes-1, index num_classes is the learned null
    # class, so unet.num_classes must be num_classes + 1.
    num_classes: int = 0
    # Probability of replacing a label by the null class in training (enables guidance).
    label_dropout: float = 0.1
    # Side of the square training latent (image size / f); the default size for sampling.
    latent_size: int = 16
    # Text-conditional when set: a transformer encoder of the captions, trained with the UNet,
    # gives the cross-attention context (text.width == unet.context_dim).
    text: TextEncoderConfig | None = None
    # Text-conditional with a frozen CLIP text encoder read from a local directory (Stable
    # Diffusion style); its hidden size must equal unet.context_dim. Excludes `text`.
    clip: ClipTextConfig | None = None
    # Probability of replacing a caption by the empty prompt in training (enables guidance).
    caption_dropout: float = 0.1
    # Layout-conditional when set: boxes (class, x0, y0, x1, y1) as tokens, read by a transformer
    # trained with the UNet (layout.width == unet.context_dim).
    layout: LayoutConfig | None = None
    # Probability of replacing a layout by the empty layout in training (enables guidance).
    layout_dropout: float = 0.1
    # Two more UNet input channels holding each latent pixel's x and y in [-1, 1] (CoordConv),
    # so cross-attention queries know where they are; layout models place objects with them.
    # Positions are those of the array the UNet sees (a tile, when sampling in tiles).
    coordinate_channels: bool = False
    # Spatially aligned condition concatenated with z_t (super-resolution, inpainting); the UNet
    # then takes z_channels + spatial.channels(z_channels) input channels. Combines with classes
    # or text (hybrid conditioning).
    spatial: SpatialConfig | None = None
    # Probability of zeroing the spatial condition in training (guidance for spatial-only models).
    spatial_dropout: float = 0.0

    def __post_init__(self) -> None:
        expected = self.num_classes + 1 if self.num_classes else None
        if self.unet.num_classes != expected:
            raise ValueError(
                f"unet.num_classes must be {expected} for num_classes={self.num_classes} "
                "(one extra entry is the null class)"
            )
        for name in ("label_dropout", "caption_dropout", "layout_dropout", "spatial_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        chosen = [
            name
            for name, on in (
                ("num_classes", bool(self.num_classes)),
                ("text", self.text is not None),
                ("clip", self.clip is not None),
                ("layout", self.layout is not None),
            )
            if on
        ]
        if len(chosen) > 1:
            raise ValueError(
                f"condition on one of classes, text, clip or layout, not {' and '.join(chosen)}"
            )
        for name in ("text", "layout"):
            encoder = getattr(self, name)
            if encoder is not None and self.unet.context_dim != encoder.width:
                raise ValueError(
                    f"unet.context_dim must equal {name}.width for {name} conditioning; got "
                    f"{self.unet.context_dim} and {encoder.width}"
                )
        if self.clip is not None and self.unet.context_dim is None:
            raise ValueError("clip conditioning needs unet.context_dim = the CLIP hidden size")
