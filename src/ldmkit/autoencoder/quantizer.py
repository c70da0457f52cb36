"""Vector quantiser with straight-through gradients and dead-code restarts (van den Oord 2017)."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Quantized:
    """Result of quantising a latent map."""

    z_q: torch.Tensor  # (B, c, h, w), straight-through: gradients pass to the encoder output
    loss: torch.Tensor  # scalar codebook + beta * commitment loss
    indices: torch.Tensor  # (B, h, w) code indices
    perplexity: torch.Tensor  # scalar exp(entropy of code usage in this batch)


class VectorQuantizer(nn.Module):
    """Nearest-codebook-entry quantisation of (B, c, h, w) latents."""

    def __init__(self, codebook_size: int, dim: int, beta: float = 0.25, usage_decay: float = 0.99):
        super().__init__()
        self.codebook_size = codebook_size
        self.beta = beta
        self.usage_decay = usage_decay
        self.embedding = nn.Embedding(codebook_size, dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / codebook_size, 1.0 / codebook_size)
        # EMA of how often each code is chosen per batch; the dead-code statistic.
        self.register_buffer("usage", torch.ones(codebook_size))

    def lookup(self, z: torch.Tensor) -> torch.Tensor:
        """Indices of the nearest codes: (B, c, h, w) -> (B, h, w)."""
        b, c, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, c)  # (N, c)
        codes = self.embedding.weight
        dist = flat.square().sum(1, keepdim=True) - 2 * flat @ codes.t() + codes.square().sum(1)
        return dist.argmin(1).reshape(b, h, w)

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors for indices: (B, h, w) -> (B, c, h, w)."""
        return self.embedding(indices).permute(0, 3, 1, 2).contiguous()

    def forward(self, z: torch.Tensor) -> Quantized:
        """Quantise z; in training mode also update the usage statistics."""
        indices = self.lookup(z.float())
        z_q = self.embed(indices).to(z.dtype)
        # Codebook term pulls codes to encodings; commitment term (beta) pulls encodings to codes.
        loss = F.mse_loss(z_q, z.detach()) + self.beta * F.mse_loss(z, z_q.detach())
        z_q = z + (z_q - z).detach()  # straight-through estimator
        counts = torch.bincount(indices.flatten(), minlength=self.codebook_size).float()
        probs = counts / counts.sum()
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        if self.training:
            with torch.no_grad():
                self.usage.mul_(self.usage_decay).add_(counts, alpha=1 - self.usage_decay)
        return Quantized(z_q=z_q, loss=loss, indices=indices, perplexity=perplexity)

    def dead_codes(self, threshold: float) -> torch.Tensor:
        """Boolean mask of codes used fewer than `threshold` times per batch on average."""
        return self.usage < threshold

    @torch.no_grad()
    def restart_dead_codes(
        self, z: torch.Tensor, threshold: float, generator: torch.Generator | None = None
    ) -> int:
        """Move dead codes onto randomly chosen encoder outputs of this batch; returns how many."""
        dead = self.dead_codes(threshold).nonzero().flatten()
        if dead.numel() == 0:
            return 0
        flat = z.detach().permute(0, 2, 3, 1).reshape(-1, z.shape[1]).float()
        pick = torch.randint(0, flat.shape[0], (dead.numel(),), generator=generator)
        self.embedding.weight.data[dead] = flat[pick.to(flat.device)].to(self.embedding.weight)
        self.usage[dead] = threshold * 2  # give restarted codes a grace period
        return int(dead.numel())
