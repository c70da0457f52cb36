"""DiffusionConfig: the denoiser, its schedule and objective, and how conditions enter."""

from dataclasses import dataclass, field

from ldmkit.conditioning import SpatialConfig, TextEncoderConfig
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
    # Probability of replacing a caption by the empty prompt in training (enables guidance).
    caption_dropout: float = 0.1
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
        for name in ("label_dropout", "caption_dropout", "spatial_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.text is not None and self.num_classes:
            raise ValueError("condition on classes or on text, not both (set num_classes=0)")
        if self.text is not None and self.unet.context_dim != self.text.width:
            raise ValueError(
                f"unet.context_dim must equal text.width for text conditioning; got "
                f"{self.unet.context_dim} and {self.text.width}"
            )
