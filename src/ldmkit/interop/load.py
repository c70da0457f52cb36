"""`load(path)`: any latent diffusion checkpoint ldmkit reads, recognised by what is in it."""

from pathlib import Path

import torch

from ldmkit.checkpoint import CONFIG_FILE, CheckpointError, load_latent_diffusion
from ldmkit.interop.diffusers_folder import INDEX, is_diffusers_folder, load_diffusers_folder
from ldmkit.pipeline import LatentDiffusion


def load(path: str | Path, device: str | torch.device = "cpu") -> LatentDiffusion:
    """The model at `path`: an ldmkit checkpoint folder (`config.json`, as training writes it)
    or a diffusers Stable Diffusion folder (`model_index.json`); offline, from the folder
    alone. Anything else is an error saying what was looked for."""
    path = Path(path)
    if is_diffusers_folder(path):
        return load_diffusers_folder(path, device)
    if (path / CONFIG_FILE).is_file() or not path.exists():
        return load_latent_diffusion(path, device)
    raise CheckpointError(
        f"{path} is neither an ldmkit checkpoint folder ({CONFIG_FILE}) nor a diffusers "
        f"pipeline folder ({INDEX}); single-file .ckpt / .safetensors checkpoints are not read "
        "yet"
    )
