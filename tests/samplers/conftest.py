"""A Gaussian data distribution whose exact denoiser and probability-flow map are known."""

from dataclasses import dataclass

import pytest
import torch

from ldmkit.diffusion import NoiseSchedule, linear_schedule, velocity, x0_to_eps
from ldmkit.samplers import Denoiser


@dataclass(frozen=True, eq=False)
class GaussianData:
    """x_0 ~ N(mu, diag(s^2)) in 4 dimensions with different means and scales."""

    schedule: NoiseSchedule
    mu: torch.Tensor
    s: torch.Tensor

    def denoiser(self, prediction: str = "eps") -> Denoiser:
        """The Bayes-optimal eps / v / x0 prediction."""

        def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            alpha_bar = self.schedule.alpha_bar_at(t).to(x_t.dtype)[:, None]  # (B, 1)
            mu, s = self.mu.to(x_t.dtype), self.s.to(x_t.dtype)
            # E[x_0 | x_t] = mu + sqrt(ab) s^2 / (ab s^2 + 1 - ab) (x_t - sqrt(ab) mu), per dim.
            gain = alpha_bar.sqrt() * s**2 / (alpha_bar * s**2 + 1 - alpha_bar)
            x0 = mu + gain * (x_t - alpha_bar.sqrt() * mu)
            eps = x0_to_eps(x_t, x0, alpha_bar)
            return {"x0": x0, "eps": eps, "v": velocity(x0, eps, alpha_bar)}[prediction]

        return denoise

    def marginal(self, t: int, z: torch.Tensor) -> torch.Tensor:
        """x_t ~ q(x_t) = N(sqrt(ab) mu, ab s^2 + 1 - ab) written as a map of z ~ N(0, I)."""
        alpha_bar = self.schedule.alpha_bar[t]
        return alpha_bar.sqrt() * self.mu + (alpha_bar * self.s**2 + 1 - alpha_bar).sqrt() * z

    def flow(self, z: torch.Tensor) -> torch.Tensor:
        """Where the exact probability-flow ODE takes marginal(t, z): mu + s z, for any t."""
        # Per dimension the flow is monotone and keeps every marginal Gaussian, so it maps
        # quantiles to quantiles: the standardised coordinate z is constant along it.
        return self.mu + self.s * z


@pytest.fixture(scope="session")
def gaussian() -> GaussianData:
    return GaussianData(
        linear_schedule(1000, 0.00085, 0.012),
        mu=torch.tensor([0.5, -1.0, 0.0, 1.5], dtype=torch.float64),
        s=torch.tensor([0.5, 1.0, 0.7, 1.5], dtype=torch.float64),
    )


@pytest.fixture(autouse=True)
def single_thread():
    """Run each sampler test on one thread, then restore the thread count."""
    # The tensors are tiny; on a loaded 2-core machine OpenMP barriers between starved
    # threads made these tests 30x slower.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
