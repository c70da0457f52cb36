"""Tiny random latent diffusion models the tests build (no training, no files): imported by
name (`from tiny_models import tiny_ldm`), since pytest puts this folder on the path."""

from pathlib import Path

import torch

from ldmkit.autoencoder import Autoencoder, AutoencoderConfig
from ldmkit.conditioning import ClassCondition, SpatialCondition, SpatialConfig
from ldmkit.pipeline import DiffusionConfig, LatentDiffusion
from ldmkit.unet import unet_preset


def tiny_autoencoder() -> Autoencoder:
    """A tiny random kl autoencoder, f=2."""
    return Autoencoder(
        AutoencoderConfig(model_channels=8, channel_mult=(1, 2), num_res_blocks=1, norm_groups=4)
    )


def _filled(model: LatentDiffusion) -> LatentDiffusion:
    """Fill the zero-initialised layers, so outputs depend on every input."""
    with torch.no_grad():
        for p in model.unet.parameters():
            if not p.any():
                p.normal_(0, 0.02)
    return model


def tiny_ldm(num_classes: int = 5, label_dropout: float = 0.1) -> LatentDiffusion:
    """A tiny random LDM on 8x8 latents (unconditional with num_classes=0), seed 0."""
    torch.manual_seed(0)
    ae = tiny_autoencoder()
    unet = unet_preset(
        "tiny",
        in_channels=3,
        out_channels=3,
        context_dim=None,
        num_classes=num_classes + 1 if num_classes else None,
    )
    classes = (
        (ClassCondition(num_classes=num_classes, dropout=label_dropout),) if num_classes else ()
    )
    config = DiffusionConfig(unet=unet, conditioners=classes, latent_size=8)
    return _filled(LatentDiffusion(config, ae))


def tiny_spatial_ldm(
    kind: str = "super_resolution", dropout: float = 0.0, classes: int = 0
) -> LatentDiffusion:
    """A tiny random LDM on 8x8 latents with a concatenated map of `kind` (and classes)."""
    torch.manual_seed(0)
    ae = tiny_autoencoder()
    spatial = SpatialConfig(kind=kind)  # type: ignore[arg-type]
    unet = unet_preset(
        "tiny",
        in_channels=3 + spatial.channels(3),
        out_channels=3,
        context_dim=None,
        num_classes=classes + 1 if classes else None,
    )
    entries = (ClassCondition(num_classes=classes),) if classes else ()
    entries += (SpatialCondition(map=spatial, dropout=dropout),)
    config = DiffusionConfig(unet=unet, conditioners=entries, latent_size=8)
    return _filled(LatentDiffusion(config, ae))


def tiny_layout_ldm() -> LatentDiffusion:
    """A tiny random layout-to-image LDM on 8x8 latents (shapes' 30 classes)."""
    from ldmkit.conditioning import LayoutCondition, LayoutConfig

    torch.manual_seed(0)
    ae = tiny_autoencoder()
    layout = LayoutConfig(width=32, layers=1, heads=2)
    unet = unet_preset("tiny", in_channels=3, out_channels=3, context_dim=32)
    config = DiffusionConfig(
        unet=unet, conditioners=(LayoutCondition(encoder=layout, dropout=0.1),), latent_size=8
    )
    return LatentDiffusion(config, ae)


def strong_random_lora(path: Path, rank: int = 2, seed: int = 0) -> Path:
    """A random rank-`rank` LoRA of the shipped text-to-image model's attention, strong enough
    to change its samples, written at `path` in kohya's names (made with peft: the caller
    skips without it)."""
    import ldmkit
    from ldmkit.assets import SHAPES_TEXT_TO_IMAGE
    from ldmkit.interop.lora import write_lora
    from ldmkit.training.lora import Adapters
    from ldmkit.training.lora_settings import LoraSettings

    model = ldmkit.load(SHAPES_TEXT_TO_IMAGE)
    adapters = Adapters(model, LoraSettings(rank=rank))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in adapters.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    return write_lora(model, adapters.pairs(), Path(path), "kohya")
