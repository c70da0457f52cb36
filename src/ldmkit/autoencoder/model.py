"""The first stage: a KL- or VQ-regularised perceptual autoencoder (Rombach et al. 2022, 3.1)."""

from dataclasses import dataclass

import torch
from torch import nn

from ldmkit.autoencoder.config import AutoencoderConfig
from ldmkit.autoencoder.decoder import Decoder
from ldmkit.autoencoder.distributions import DiagonalGaussian, PointMass, Posterior
from ldmkit.autoencoder.encoder import Encoder
from ldmkit.autoencoder.quantizer import Quantized, VectorQuantizer
from ldmkit.autoencoder.tiled_decoder import decode_in_tiles


@dataclass
class AutoencoderOutput:
    """Everything a training step needs from one forward pass."""

    reconstruction: torch.Tensor  # (B, C, H, W)
    posterior: Posterior
    quantized: Quantized | None  # VQ only


class Autoencoder(nn.Module):
    """E and D with a KL posterior or a vector quantiser between them.

    The latent that diffusion sees is `to_latent(x) = (z - latent_shift) * latent_scale`; both
    numbers are measured from data (`measure_latent_statistics`) and saved with the weights.
    As in the paper, a VQ model's latent is taken before quantisation and quantised in `decode`.
    A "pixel" model has no weights: encode and decode are the identity (scale 1, shift 0).
    """

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = config
        self.register_buffer("latent_shift", torch.zeros(()))
        self.register_buffer("latent_scale", torch.ones(()))
        self.quantize: VectorQuantizer | None = None
        if config.kind == "pixel":
            self.encoder = self.quant_conv = self.post_quant_conv = self.decoder = nn.Identity()
            return
        z = config.z_channels
        moments = 2 * z if config.kind == "kl" else z
        self.encoder: nn.Module = Encoder(config, out_channels=moments)
        self.quant_conv: nn.Module = nn.Conv2d(moments, moments, 1)
        if config.kind == "vq":
            self.quantize = VectorQuantizer(config.codebook_size, z, config.commitment_beta)
        self.post_quant_conv: nn.Module = nn.Conv2d(z, z, 1)
        self.decoder: nn.Module = Decoder(config)

    @property
    def factor(self) -> int:
        """Spatial downsampling factor f."""
        return self.config.factor

    def encode(self, x: torch.Tensor) -> Posterior:
        """q(z | x) for images x in [-1, 1] of shape (B, C, H, W)."""
        h = self.quant_conv(self.encoder(x))
        if self.config.kind == "kl":
            return DiagonalGaussian(h, self.config.logvar_min, self.config.logvar_max)
        return PointMass(h)

    def decode(self, z: torch.Tensor, tile: int | None = None) -> torch.Tensor:
        """Decode a raw latent (quantised first for VQ): (B, c, h, w) -> (B, C, H, W); with
        `tile`, in tiles of at most that many latent pixels a side (`decode_in_tiles`)."""
        if self.quantize is not None:
            z = self.quantize(z).z_q
        z = self.post_quant_conv(z)
        if not torch.is_grad_enabled() and z.device.type == "cpu":
            # Channels-last on the CPU: oneDNN convolves it without reordering each input and
            # output (a 512x512 SD decode 10% faster, its peak 0.2 GiB lower).
            z = z.contiguous(memory_format=torch.channels_last)
        if tile is None or self.config.kind == "pixel":
            return self.decoder(z).contiguous()
        return decode_in_tiles(self.decoder, z, tile).contiguous()

    def forward(
        self,
        x: torch.Tensor,
        sample_posterior: bool = True,
        generator: torch.Generator | None = None,
    ) -> AutoencoderOutput:
        """Encode, regularise (sample or quantise) and decode."""
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample_posterior else posterior.mode()
        quantized = None
        if self.quantize is not None:
            quantized = self.quantize(z)
            z = quantized.z_q
        reconstruction = self.decoder(self.post_quant_conv(z))
        return AutoencoderOutput(reconstruction, posterior, quantized)

    def to_latent(
        self, x: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Image -> normalised diffusion latent (z - shift) * scale."""
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample else posterior.mode()
        return (z - self.latent_shift) * self.latent_scale

    def from_latent(self, z: torch.Tensor, tile: int | None = None) -> torch.Tensor:
        """Normalised diffusion latent -> image (inverse of `to_latent`, then `decode`)."""
        return self.decode(z / self.latent_scale + self.latent_shift, tile)

    def set_latent_statistics(self, shift: float, scale: float) -> None:
        """Store the measured latent shift and scale (saved with the weights)."""
        self.latent_shift.fill_(shift)
        self.latent_scale.fill_(scale)
