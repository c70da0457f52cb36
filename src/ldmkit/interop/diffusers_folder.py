"""A diffusers Stable Diffusion folder (`model_index.json` beside `unet/`, `vae/`,
`text_encoder/`, `tokenizer/`, `scheduler/`) as an ldmkit `LatentDiffusion`, read offline from
the folder alone: the UNet and VAE weights mapped onto ldmkit's modules, the scheduler's betas
and prediction type as the schedule and objective, the CLIP text encoder as a `ClipCondition`.
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ldmkit.checkpoint import CheckpointError, load_state
from ldmkit.conditioning import ClipCondition, ClipTextConfig
from ldmkit.diffusion import DiffusionLossConfig, ScheduleConfig
from ldmkit.interop.concat_inputs import MAX_NOISE_LEVEL, concat_conditioners
from ldmkit.interop.diffusers_autoencoder import autoencoder_from_diffusers
from ldmkit.interop.diffusers_unet import unet_config_from_diffusers, unet_state_from_diffusers
from ldmkit.interop.single_file import read_state
from ldmkit.pipeline import DiffusionConfig, LatentDiffusion

INDEX = "model_index.json"
PIPELINES = (
    "StableDiffusionPipeline",
    "StableDiffusionImg2ImgPipeline",
    "StableDiffusionInpaintPipeline",
    "StableDiffusionUpscalePipeline",
)
WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
# diffusers' prediction_type -> ldmkit's parameterisation.
PREDICTIONS = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}
# diffusers' beta_schedule -> ldmkit's schedule kind ("linear" in ldmkit is LDM's sqrt-linear).
SCHEDULES = {"scaled_linear": "linear", "squaredcos_cap_v2": "cosine"}


def is_diffusers_folder(path: Path) -> bool:
    """Whether `path` is a diffusers pipeline folder."""
    return (Path(path) / INDEX).is_file()


def schedule_from_diffusers(config: Mapping[str, Any]) -> tuple[ScheduleConfig, str]:
    """(schedule, parameterisation) of a diffusers scheduler config; what ldmkit cannot
    reproduce exactly is an error naming the key."""
    kind = config.get("beta_schedule", "linear")
    if config.get("trained_betas") is not None:
        raise CheckpointError("scheduler: trained_betas (an explicit beta list) is not supported")
    if kind not in SCHEDULES:
        raise CheckpointError(
            f"scheduler: beta_schedule {kind!r} is not supported; supported: {', '.join(SCHEDULES)}"
        )
    prediction = config.get("prediction_type", "epsilon")
    if prediction not in PREDICTIONS:
        raise CheckpointError(
            f"scheduler: prediction_type {prediction!r} is not one of {', '.join(PREDICTIONS)}"
        )
    # diffusers' defaults where the key is absent: PNDM's set_alpha_to_one is False, DDIM's True.
    alpha_to_one = config.get("set_alpha_to_one", config.get("_class_name") != "PNDMScheduler")
    schedule = ScheduleConfig(
        kind=SCHEDULES[kind],  # type: ignore[arg-type]
        num_timesteps=int(config.get("num_train_timesteps", 1000)),
        beta_start=float(config.get("beta_start", 0.00085)),
        beta_end=float(config.get("beta_end", 0.012)),
        zero_terminal_snr=bool(config.get("rescale_betas_zero_snr", False)),
        steps_offset=int(config.get("steps_offset", 0)),
        set_alpha_to_one=bool(alpha_to_one),
    )
    return schedule, PREDICTIONS[prediction]


def load_diffusers_folder(path: Path, device: str | torch.device = "cpu") -> LatentDiffusion:
    """The Stable Diffusion pipeline in the diffusers folder `path` as a LatentDiffusion."""
    path = Path(path)
    index = _json(path / INDEX)
    name = index.get("_class_name")
    if name not in PIPELINES:
        raise CheckpointError(
            f"{path}: a diffusers {name} folder; ldmkit reads {', '.join(PIPELINES)} folders"
        )
    missing = [
        part
        for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
        if not (path / part).is_dir()
    ]
    if missing:
        raise CheckpointError(f"{path}: the pipeline folder lacks {', '.join(missing)}/")
    unet_config = _json(path / "unet" / "config.json")
    concat = concat_conditioners(
        int(unet_config.get("in_channels", 4)),
        int(unet_config.get("out_channels", 4)),
        str(path),
        unet_config.get("num_class_embeds"),
        factor=2 ** (len(_json(path / "vae" / "config.json")["block_out_channels"]) - 1),
        max_noise_level=int(index.get("max_noise_level", MAX_NOISE_LEVEL)),
    )
    schedule, prediction = schedule_from_diffusers(
        _json(path / "scheduler" / "scheduler_config.json")
    )
    try:
        unet = unet_config_from_diffusers(unet_config)
        autoencoder = autoencoder_from_diffusers(
            _weights(path / "vae"), _json(path / "vae" / "config.json")
        )
        config = DiffusionConfig(
            unet=unet,
            schedule=schedule,
            loss=DiffusionLossConfig(prediction=prediction),  # type: ignore[arg-type]
            latent_size=int(unet_config.get("sample_size", 64)),
            conditioners=(ClipCondition(encoder=ClipTextConfig(str(path))), *concat),
        )
        model = LatentDiffusion(config, autoencoder)
        mapped = unet_state_from_diffusers(_weights(path / "unet"), unet)
        load_state(model.unet, mapped, path / "unet")  # names what is missing or extra
    except CheckpointError:
        raise
    except (KeyError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: {error}") from error
    return model.to(device).eval()


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise CheckpointError(f"{path} is missing") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} is not readable JSON: {error}") from error
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not hold a JSON object")
    return data


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    """A component's weights: safetensors, else a .bin read with weights_only (`read_state`:
    no code runs)."""
    for name in WEIGHTS:
        if (folder / name).is_file():
            return read_state(folder / name)[0]
    raise CheckpointError(f"{folder} has no weights file ({' or '.join(WEIGHTS)})")
