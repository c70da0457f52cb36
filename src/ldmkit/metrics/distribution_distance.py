"""Distances between two sets of image features: Frechet distance (FID) and KID.

FID (Heusel et al. 2017) fits a Gaussian to each set and measures
`||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))`. KID (Binkowski et al. 2018) is the
unbiased squared MMD under the cubic polynomial kernel `k(x, y) = (x.y / d + 1)^3`, averaged over
random subsets; unlike FID it has no bias that depends on the number of samples. Both are
computed in float64. Which features (InceptionV3 pool3, or a domain network's) is the caller's
choice.
"""

import torch


def gaussian_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of `features` (N, D), N >= 2, in float64."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features must be (N >= 2, D), got {tuple(features.shape)}")
    x = features.detach().to(torch.float64)
    mu = x.mean(0)
    centred = x - mu
    return mu, centred.T @ centred / (x.shape[0] - 1)


def frechet_distance(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Tr((S1 S2)^(1/2)) is the sum of the square roots of the eigenvalues of S1 S2, which are real
    and >= 0 for covariance matrices (S1 S2 is similar to S1^(1/2) S2 S1^(1/2)); round-off
    imaginary parts and tiny negatives are dropped.
    """
    mu1, mu2 = mu1.to(torch.float64), mu2.to(torch.float64)
    sigma1, sigma2 = sigma1.to(torch.float64), sigma2.to(torch.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"statistics differ in shape: {tuple(mu1.shape)} vs {tuple(mu2.shape)}, "
            f"{tuple(sigma1.shape)} vs {tuple(sigma2.shape)}; use the same feature extractor"
        )
    eigenvalues = torch.linalg.eigvals(sigma1 @ sigma2).real.clamp(min=0)
    trace_sqrt = eigenvalues.sqrt().sum()
    mean_term = (mu1 - mu2).square().sum()
    return float(mean_term + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt)


def fid_from_features(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between two feature sets (N, D) and (M, D)."""
    return frechet_distance(*gaussian_statistics(real), *gaussian_statistics(fake))


def _unbiased_mmd2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    d = x.shape[1]
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    m, n = x.shape[0], y.shape[0]
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return within_x + within_y - 2 * k_xy.mean()


def kernel_inception_distance(
    real: torch.Tensor,
    fake: torch.Tensor,
    subsets: int = 100,
    subset_size: int | None = None,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: mean and std over `subsets` random subsets of `subset_size` features from each set.

    The default size is 1000 (the usual choice) or half the smaller set, whichever is less, so
    that the subsets differ and the std says something.
    """
    smaller = min(real.shape[0], fake.shape[0])
    size = min(subset_size, smaller) if subset_size else min(1000, max(2, smaller // 2))
    if size < 2:
        raise ValueError("KID needs at least 2 features in each set")
    x, y = real.detach().to(torch.float64), fake.detach().to(torch.float64)
    g = torch.Generator().manual_seed(seed)
    values = torch.stack(
        [
            _unbiased_mmd2(
                x[torch.randperm(x.shape[0], generator=g)[:size]],
                y[torch.randperm(y.shape[0], generator=g)[:size]],
            )
            for _ in range(subsets)
        ]
    )
    return float(values.mean()), float(values.std()) if subsets > 1 else 0.0
