"""L2: samplers, one algorithm per file, each over any denoise(x_t, t) and a noise schedule,
walking a `StepGrid` (spacing, Karras sigmas, steps_offset, final point)."""

from ldmkit.samplers.ddim import sample_ddim
from ldmkit.samplers.ddpm import sample_ddpm
from ldmkit.samplers.dpm_solver import sample_dpmpp_2m
from ldmkit.samplers.dpm_solver_sde import sample_dpmpp_2m_sde
from ldmkit.samplers.euler import sample_euler
from ldmkit.samplers.euler_ancestral import sample_euler_ancestral
from ldmkit.samplers.grid import GridPoint, StepGrid, karras_sigmas, step_grid
from ldmkit.samplers.guidance import classifier_free_guidance
from ldmkit.samplers.heun import sample_heun
from ldmkit.samplers.names import sampler_from_name, webui_name
from ldmkit.samplers.noise import randn_per_sample
from ldmkit.samplers.options import SamplingOptions
from ldmkit.samplers.plms import sample_plms
from ldmkit.samplers.registry import SAMPLERS, sample
from ldmkit.samplers.tiling import tiled
from ldmkit.samplers.timesteps import Spacing, select_timesteps
from ldmkit.samplers.types import Denoiser, StepCallback
from ldmkit.samplers.unipc import sample_unipc

__all__ = [
    "SAMPLERS",
    "Denoiser",
    "GridPoint",
    "SamplingOptions",
    "Spacing",
    "StepCallback",
    "StepGrid",
    "classifier_free_guidance",
    "karras_sigmas",
    "randn_per_sample",
    "sample",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpmpp_2m",
    "sample_dpmpp_2m_sde",
    "sample_euler",
    "sample_euler_ancestral",
    "sample_heun",
    "sample_plms",
    "sample_unipc",
    "sampler_from_name",
    "select_timesteps",
    "step_grid",
    "tiled",
    "webui_name",
]
