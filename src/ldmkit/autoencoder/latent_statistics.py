"""Measure the latent scale (and shift) from data: the paper's scale-by-std (Appendix G)."""

from collections.abc import Iterable

import torch

from ldmkit.autoencoder.model import Autoencoder


@torch.no_grad()
def measure_latent_statistics(
    model: Autoencoder, images: Iterable[torch.Tensor], use_shift: bool = False
) -> tuple[float, float]:
    """Return (shift, scale): scale = 1 / std(z) over `images`, shift = mean(z) or 0."""
    total = 0
    s1 = torch.zeros((), dtype=torch.float64)
    s2 = torch.zeros((), dtype=torch.float64)
    was_training = model.training
    model.eval()
    for x in images:
        z = model.encode(x).mode().double()
        total += z.numel()
        s1 += z.sum().cpu()
        s2 += z.square().sum().cpu()
    model.train(was_training)
    if total == 0:
        raise ValueError("measure_latent_statistics got no images; pass at least one batch")
    mean = float(s1 / total)
    shift = mean if use_shift else 0.0
    var = float(s2 / total) - mean * mean  # the paper's scale_by_std uses the plain std

    if var <= 0:
        raise ValueError("latents have zero variance; the autoencoder is degenerate")
    return shift, var**-0.5
