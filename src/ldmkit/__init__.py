"""ldmkit: Latent Diffusion Models (Rombach et al., CVPR 2022), complete and small."""

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from ldmkit.pipeline import LatentDiffusion

__version__ = "0.1.0"


def load(
    path: "str | Path",
    device: "str | torch.device" = "cpu",
    ema: bool = False,
    prediction: str | None = None,
    original_config: "str | Path | None" = None,
    precision: str = "fp32",
) -> "LatentDiffusion":
    """A latent diffusion model from a local folder or file: an ldmkit checkpoint, a diffusers
    Stable Diffusion folder or a Stable Diffusion 1.x / 2.x single file (`ldmkit.interop.load`;
    `ema`: a single file's EMA weights; `prediction`: eps or v for a 2.x file;
    `original_config`: its original YAML, which overrides detection; `precision`: bf16 / fp16
    holds the UNet's weights in half precision, a single file's read straight into it);
    nothing is downloaded."""
    from ldmkit.interop.load import load as load_any

    config = None if original_config is None else Path(original_config)
    return load_any(path, device, ema, prediction, config, precision)
