"""The conditioners a `DiffusionConfig` asks for: the one place that maps its fields to
`ldmkit.conditioning` classes (register a new mode here)."""

from ldmkit.autoencoder import Autoencoder
from ldmkit.conditioning import (
    ClassConditioner,
    ClipConditioner,
    ClipTextEncoder,
    Conditioner,
    LayoutConditioner,
    SpatialConditioner,
    TextConditioner,
    TextTokenizer,
)
from ldmkit.pipeline.config import DiffusionConfig


def build_conditioners(
    config: DiffusionConfig,
    autoencoder: Autoencoder,
    tokenizer: TextTokenizer | None = None,
    clip: ClipTextEncoder | None = None,
) -> list[Conditioner]:
    """The conditioners of `config`, cross-attention or class first, the concatenated map last
    (the order in which training draws from each sample's generator)."""
    found: list[Conditioner] = []
    if config.num_classes:
        found.append(ClassConditioner(config.num_classes, config.label_dropout))
    if config.text is not None:
        if tokenizer is None:
            raise ValueError("a text-conditional model needs its tokenizer (tokenizer=)")
        found.append(TextConditioner(config.text, tokenizer, config.caption_dropout))
    if config.clip is not None:
        conditioner = ClipConditioner(config.clip, config.caption_dropout, clip)
        if conditioner.width != config.unet.context_dim:
            raise ValueError(
                f"the CLIP text encoder at {config.clip.path} has width {conditioner.width}; "
                f"set unet.context_dim={conditioner.width} (it is {config.unet.context_dim})"
            )
        found.append(conditioner)
    if config.layout is not None:
        found.append(LayoutConditioner(config.layout, config.layout_dropout))
    if config.spatial is not None:
        found.append(
            SpatialConditioner(
                config.spatial, autoencoder.to_latent, autoencoder.factor, config.spatial_dropout
            )
        )
    return found
