"""`load(path)`: any latent diffusion checkpoint ldmkit reads, recognised by what is in it."""

from pathlib import Path

import torch

from ldmkit.checkpoint import CONFIG_FILE, CheckpointError, load_latent_diffusion
from ldmkit.interop.diffusers_folder import INDEX, is_diffusers_folder, load_diffusers_folder
from ldmkit.interop.single_file import SUFFIXES, is_single_file, load_single_file
from ldmkit.pipeline import LatentDiffusion


def load(
    path: str | Path,
    device: str | torch.device = "cpu",
    ema: bool = False,
    prediction: str | None = None,
    original_config: Path | None = None,
    precision: str = "fp32",
) -> LatentDiffusion:
    """The model at `path`: an ldmkit checkpoint folder (`config.json`, as training writes it),
    a diffusers Stable Diffusion folder (`model_index.json`) or a Stable Diffusion 1.x single
    file (`.safetensors`, `.ckpt`); offline, from what is there alone. Anything else is an
    error saying what was looked for. `ema` takes a single file's EMA weights (ldmkit's own
    checkpoints hold the EMA weights already); `prediction` (eps or v) says what a Stable
    Diffusion 2.x file predicts, which the file does not record; `original_config` (the
    model's original YAML) overrides what is detected for a single file; `precision` (bf16 /
    fp16) holds the UNet's weights in half precision (`LatentDiffusion.hold_weights_in`; a
    .safetensors file's are read straight into it, never all in float32)."""
    path = Path(path)
    if is_single_file(path):
        return load_single_file(path, device, ema, prediction, original_config, precision)
    if ema or prediction is not None or original_config is not None:
        raise CheckpointError(
            f"{path}: --ema, --prediction and --config are for single files (a folder says its own)"
        )
    if is_diffusers_folder(path):
        model = load_diffusers_folder(path, device)
    elif (path / CONFIG_FILE).is_file() or not path.exists():
        model = load_latent_diffusion(path, device)
    else:
        raise CheckpointError(
            f"{path} is neither an ldmkit checkpoint folder ({CONFIG_FILE}), a diffusers "
            f"pipeline folder ({INDEX}) nor a checkpoint file ({', '.join(SUFFIXES)})"
        )
    model.hold_weights_in(precision)
    return model
