"""L2: samplers, one algorithm per file, each over any denoise(x_t, t) and a noise schedule."""

from ldmkit.samplers.ddim import sample_ddim
from ldmkit.samplers.ddpm import sample_ddpm
from ldmkit.samplers.dpm_solver import sample_dpmpp_2m
from ldmkit.samplers.guidance import classifier_free_guidance
from ldmkit.samplers.noise import randn_per_sample
from ldmkit.samplers.options import SamplingOptions
from ldmkit.samplers.plms import sample_plms
from ldmkit.samplers.registry import SAMPLERS, sample
from ldmkit.samplers.tiling import tiled
from ldmkit.samplers.timesteps import Spacing, select_timesteps
from ldmkit.samplers.types import Denoiser, StepCallback

__all__ = [
    "SAMPLERS",
    "Denoiser",
    "SamplingOptions",
    "Spacing",
    "StepCallback",
    "classifier_free_guidance",
    "randn_per_sample",
    "sample",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpmpp_2m",
    "sample_plms",
    "select_timesteps",
    "tiled",
]
