"""ldmkit: Latent Diffusion Models (Rombach et al., CVPR 2022), complete and small."""

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from ldmkit.pipeline import LatentDiffusion

__version__ = "0.1.0"


def load(path: "str | Path", device: "str | torch.device" = "cpu") -> "LatentDiffusion":
    """A latent diffusion model from a local folder: an ldmkit checkpoint or a diffusers Stable
    Diffusion folder (`ldmkit.interop.load`); nothing is downloaded."""
    from ldmkit.interop.load import load as load_any

    return load_any(path, device)
