"""The conditioners a `DiffusionConfig` lists, built with what they need from the pipeline."""

from collections.abc import Mapping
from typing import Any

from ldmkit.autoencoder import Autoencoder
from ldmkit.conditioning import BuildContext, Conditioner
from ldmkit.pipeline.config import DiffusionConfig


def build_conditioners(
    config: DiffusionConfig, autoencoder: Autoencoder, loaded: Mapping[str, Any] | None = None
) -> list[Conditioner]:
    """The conditioners of `config`, in its order (the order in which training draws from each
    sample's generator). `loaded` holds what some need by kind (a text model's tokenizer under
    "text", an already loaded CLIP under "clip")."""
    context = BuildContext(
        autoencoder.to_latent, autoencoder.factor, config.unet.context_dim, loaded or {}
    )
    return [entry.build(context) for entry in config.conditioners]
