"""L1: the perceptual autoencoders (first stage): KL- or VQ-regularised, with their loss."""

from ldmkit.autoencoder.config import AutoencoderConfig, pixel_space
from ldmkit.autoencoder.latent_statistics import measure_latent_statistics
from ldmkit.autoencoder.loss import AutoencoderLoss, AutoencoderLossConfig
from ldmkit.autoencoder.model import Autoencoder, AutoencoderOutput

__all__ = [
    "Autoencoder",
    "AutoencoderConfig",
    "AutoencoderLoss",
    "AutoencoderLossConfig",
    "AutoencoderOutput",
    "measure_latent_statistics",
    "pixel_space",
]
