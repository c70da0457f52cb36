"""Autoencoder objective: reconstruction + perceptual + regulariser + adaptive PatchGAN term.

Follows the LDM first-stage loss (Rombach et al. 2022, Sec. 3.1 and Appendix G; Esser et al. 2021
for the adaptive weight): L = L_rec / exp(s) + s + w_kl * KL (or w_q * L_codebook)
+ lambda * L_GAN, lambda = ||grad L_rec|| / (||grad L_GAN|| + 1e-4) at the decoder's last layer.
"""

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ldmkit.autoencoder.discriminator import PatchDiscriminator, hinge_discriminator_loss
from ldmkit.autoencoder.model import AutoencoderOutput


@dataclass(frozen=True)
class AutoencoderLossConfig:
    """Weights of the autoencoder objective's terms."""

    reconstruction: Literal["l1", "l2"] = "l1"
    # LPIPS needs local VGG16 + LPIPS head weights (see docs/lpips.md); 0 disables it.
    perceptual_weight: float = 0.0
    lpips_vgg_path: str = ""
    lpips_lin_path: str = ""
    kl_weight: float = 1e-6
    codebook_weight: float = 1.0
    learn_logvar: bool = True
    logvar_init: float = 0.0
    disc_start: int = 50001
    disc_weight: float = 0.5
    disc_factor: float = 1.0
    disc_layers: int = 3
    disc_channels: int = 64

    def __post_init__(self) -> None:
        for name in ("perceptual_weight", "kl_weight", "codebook_weight", "disc_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        for name in ("disc_start", "disc_layers", "disc_channels"):
            minimum = 0 if name == "disc_start" else 1
            if getattr(self, name) < minimum:
                raise ValueError(f"{name} must be >= {minimum}, got {getattr(self, name)}")
        if not self.disc_factor >= 0.0:
            raise ValueError(f"disc_factor must be >= 0, got {self.disc_factor}")


def adaptive_gan_weight(
    rec_loss: torch.Tensor, gan_loss: torch.Tensor, last_layer: torch.Tensor
) -> torch.Tensor:
    """||grad rec|| / (||grad gan|| + 1e-4) at `last_layer`, clamped to [0, 1e4], no gradient."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    weight = rec_grad.norm() / (gan_grad.norm() + 1e-4)
    return weight.clamp(0.0, 1e4).detach()


class AutoencoderLoss(nn.Module):
    """Holds the discriminator, the learned log-variance s and the optional LPIPS network."""

    def __init__(
        self,
        config: AutoencoderLossConfig,
        kind: Literal["kl", "vq"],
        in_channels: int = 3,
        perceptual: nn.Module | None = None,
    ):
        super().__init__()
        self.config = config
        self.kind = kind
        self.logvar = nn.Parameter(
            torch.full((), config.logvar_init), requires_grad=config.learn_logvar
        )
        self.discriminator = PatchDiscriminator(
            in_channels, config.disc_channels, config.disc_layers
        )
        self.perceptual = perceptual

    def disc_active(self, step: int) -> bool:
        """Whether the GAN terms are on at this step."""
        return step >= self.config.disc_start and self.config.disc_factor > 0

    def generator_loss(
        self, x: torch.Tensor, out: AutoencoderOutput, step: int, last_layer: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss for the autoencoder's parameters (and s); returns (loss, scalar logs)."""
        c = self.config
        x_rec = out.reconstruction
        diff = x_rec.float() - x.float()
        rec = diff.abs() if c.reconstruction == "l1" else diff.square()  # (B, C, H, W)
        logs = {"rec": rec.mean().item()}
        if self.perceptual is not None and c.perceptual_weight > 0:
            p = self.perceptual(x_rec.float(), x.float()).reshape(-1, 1, 1, 1)  # (B, 1, 1, 1)
            rec = rec + c.perceptual_weight * p
            logs["lpips"] = p.mean().item()
        nll = rec / torch.exp(self.logvar) + self.logvar
        if self.kind == "kl":
            # Sum over pixels, mean over the batch: the scale at which kl_weight=1e-6 is meant.
            nll_loss = nll.sum() / x.shape[0]
            kl = out.posterior.kl().mean()
            loss = nll_loss + c.kl_weight * kl
            logs["kl"] = kl.item()
        else:
            assert out.quantized is not None
            nll_loss = nll.mean()
            loss = nll_loss + c.codebook_weight * out.quantized.loss
            logs["codebook"] = out.quantized.loss.item()
            logs["perplexity"] = out.quantized.perplexity.item()
        logs["logvar"] = self.logvar.item()
        if self.disc_active(step):
            g_loss = -self.discriminator(x_rec.contiguous()).float().mean()
            weight = (
                adaptive_gan_weight(nll_loss, g_loss, last_layer)
                if self.training
                else torch.zeros(())
            )
            loss = loss + c.disc_weight * weight * c.disc_factor * g_loss
            logs["g_loss"] = g_loss.item()
            logs["d_weight"] = float(weight)
        logs["loss"] = loss.item()
        return loss, logs

    def discriminator_loss(
        self, x: torch.Tensor, x_rec: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Hinge loss for the discriminator's parameters; returns (loss, scalar logs)."""
        logits_real = self.discriminator(x.detach().contiguous()).float()
        logits_fake = self.discriminator(x_rec.detach().contiguous()).float()
        factor = self.config.disc_factor if self.disc_active(step) else 0.0
        d_loss = factor * hinge_discriminator_loss(logits_real, logits_fake)
        return d_loss, {
            "d_loss": d_loss.item(),
            "logits_real": logits_real.mean().item(),
            "logits_fake": logits_fake.mean().item(),
        }
