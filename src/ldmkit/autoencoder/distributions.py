"""Posteriors q(z | x) returned by the encoders: a diagonal Gaussian (KL) or a point mass (VQ)."""

import torch


class DiagonalGaussian:
    """N(mean, diag(exp(logvar))) with the log-variance clamped for stability."""

    def __init__(self, moments: torch.Tensor, logvar_min: float = -30.0, logvar_max: float = 20.0):
        # moments: (B, 2c, h, w) = concat(mean, logvar) along channels.
        self.mean, logvar = torch.chunk(moments, 2, dim=1)
        self.logvar = logvar.clamp(logvar_min, logvar_max)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised sample mean + std * eps."""
        eps = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.std * eps

    def mode(self) -> torch.Tensor:
        """The mean, used as the deterministic encoding."""
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) summed over latent dimensions: (B,)."""
        var = self.std.square()
        return 0.5 * torch.sum(self.mean.square() + var - 1.0 - self.logvar, dim=(1, 2, 3))


class PointMass:
    """A deterministic encoding (the VQ model's pre-quantisation latent)."""

    def __init__(self, value: torch.Tensor):
        self.mean = value

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """The value itself."""
        return self.mean

    def mode(self) -> torch.Tensor:
        """The value itself."""
        return self.mean

    def kl(self) -> torch.Tensor:
        """Zero: no KL regulariser for a point mass."""
        return self.mean.new_zeros(self.mean.shape[0])


Posterior = DiagonalGaussian | PointMass
