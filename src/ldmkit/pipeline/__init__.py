"""L3: the one place that knows first stage, conditioners, denoiser, schedule and sampler."""

from ldmkit.pipeline.config import DiffusionConfig
from ldmkit.pipeline.latent_diffusion import LatentDiffusion

__all__ = ["DiffusionConfig", "LatentDiffusion"]
