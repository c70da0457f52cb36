"""`load(path)`: any latent diffusion checkpoint ldmkit reads, recognised by what is in it."""

from pathlib import Path

import torch

from ldmkit.checkpoint import CONFIG_FILE, CheckpointError, load_latent_diffusion
from ldmkit.interop.diffusers_folder import INDEX, is_diffusers_folder, load_diffusers_folder
from ldmkit.interop.single_file import SUFFIXES, is_single_file, load_single_file
from ldmkit.pipeline import LatentDiffusion


def load(
    path: str | Path, device: str | torch.device = "cpu", ema: bool = False
) -> LatentDiffusion:
    """The model at `path`: an ldmkit checkpoint folder (`config.json`, as training writes it),
    a diffusers Stable Diffusion folder (`model_index.json`) or a Stable Diffusion 1.x single
    file (`.safetensors`, `.ckpt`); offline, from what is there alone. Anything else is an
    error saying what was looked for. `ema` takes a single file's EMA weights (ldmkit's own
    checkpoints hold the EMA weights already)."""
    path = Path(path)
    if is_single_file(path):
        return load_single_file(path, device, ema)
    if ema:
        raise CheckpointError(f"{path}: --ema is for single files that hold model_ema.* weights")
    if is_diffusers_folder(path):
        return load_diffusers_folder(path, device)
    if (path / CONFIG_FILE).is_file() or not path.exists():
        return load_latent_diffusion(path, device)
    raise CheckpointError(
        f"{path} is neither an ldmkit checkpoint folder ({CONFIG_FILE}), a diffusers pipeline "
        f"folder ({INDEX}) nor a checkpoint file ({', '.join(SUFFIXES)})"
    )
