"""A diffusers pipeline folder (`model_index.json` beside `unet/`, `vae/` or `vqvae/`, the text
encoder and its tokenizer, `scheduler/`) as an ldmkit `LatentDiffusion`, read offline from the
folder alone: the UNet and first-stage weights mapped onto ldmkit's modules, the scheduler's
betas and prediction type as the schedule and objective, the text encoder as a conditioner
(Stable Diffusion's CLIP as a `ClipCondition`, the paper's LDMBert as a `BertCondition`).
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ldmkit.checkpoint import CheckpointError, load_state
from ldmkit.conditioning import (
    BertCondition,
    BertConditioner,
    BertEncoderConfig,
    ClipCondition,
    ClipTextConfig,
)
from ldmkit.diffusion import DiffusionLossConfig, ScheduleConfig
from ldmkit.interop.concat_inputs import MAX_NOISE_LEVEL, concat_conditioners
from ldmkit.interop.diffusers_autoencoder import autoencoder_from_diffusers
from ldmkit.interop.diffusers_unet import unet_config_from_diffusers, unet_state_from_diffusers
from ldmkit.interop.single_file import read_state
from ldmkit.pipeline import DiffusionConfig, LatentDiffusion

INDEX = "model_index.json"
LDM_PIPELINES = ("LDMTextToImagePipeline", "LDMPipeline")
PIPELINES = (
    *LDM_PIPELINES,
    "StableDiffusionPipeline",
    "StableDiffusionImg2ImgPipeline",
    "StableDiffusionInpaintPipeline",
    "StableDiffusionUpscalePipeline",
)
# diffusers' component weights, then transformers' (LDMBert is a transformers model).
WEIGHTS = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.bin",
    "model.safetensors",
    "pytorch_model.bin",
)
# diffusers' prediction_type -> ldmkit's parameterisation.
PREDICTIONS = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}
# diffusers' beta_schedule -> ldmkit's schedule kind: diffusers' "scaled_linear" is LDM's
# sqrt-linear schedule (ldmkit's "linear"), its "linear" the plain one (ldmkit's "beta_linear").
SCHEDULES = {"scaled_linear": "linear", "squaredcos_cap_v2": "cosine", "linear": "beta_linear"}
# The ends of a plain-linear schedule whose config leaves them out: diffusers' own defaults
# (DDPM's). A scaled_linear one's stay Stable Diffusion's (0.00085, 0.012).
LINEAR_BETAS = (0.0001, 0.02)


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
    start, end = LINEAR_BETAS if kind == "linear" else (0.00085, 0.012)
    schedule = ScheduleConfig(
        kind=SCHEDULES[kind],  # type: ignore[arg-type]
        num_timesteps=int(config.get("num_train_timesteps", 1000)),
        beta_start=float(config.get("beta_start", start)),
        beta_end=float(config.get("beta_end", end)),
        zero_terminal_snr=bool(config.get("rescale_betas_zero_snr", False)),
        steps_offset=int(config.get("steps_offset", 0)),
        set_alpha_to_one=bool(alpha_to_one),
    )
    return schedule, PREDICTIONS[prediction]


def load_diffusers_folder(path: Path, device: str | torch.device = "cpu") -> LatentDiffusion:
    """The pipeline in the diffusers folder `path` as a LatentDiffusion: a Stable Diffusion one
    (CLIP; text-to-image, inpainting, upscaling) or the paper's own: `LDMTextToImagePipeline`
    (LDMBert over word pieces) and the unconditional `LDMPipeline` (a UNet2DModel)."""
    path = Path(path)
    index = _json(path / INDEX)
    name = index.get("_class_name")
    if name not in PIPELINES:
        raise CheckpointError(
            f"{path}: a diffusers {name} folder; ldmkit reads {', '.join(PIPELINES)} folders"
        )
    vae_part = "vqvae" if name in LDM_PIPELINES else "vae"
    text_parts = {"LDMTextToImagePipeline": ("bert", "tokenizer"), "LDMPipeline": ()}
    parts = ("unet", vae_part, *text_parts.get(name, ("text_encoder", "tokenizer")), "scheduler")
    missing = [part for part in parts if not (path / part).is_dir()]
    if missing:
        raise CheckpointError(f"{path}: the pipeline folder lacks {', '.join(missing)}/")
    unet_config = _json(path / "unet" / "config.json")
    vae_config = _json(path / vae_part / "config.json")
    schedule, prediction = schedule_from_diffusers(
        _json(path / "scheduler" / "scheduler_config.json")
    )
    try:
        text: tuple[Any, ...] = (ClipCondition(encoder=ClipTextConfig(str(path))),)
        if name == "LDMTextToImagePipeline":
            text = (bert_condition_from_diffusers(path),)
        elif name == "LDMPipeline":
            text = ()  # unconditional
        concat = concat_conditioners(
            int(unet_config.get("in_channels", 4)),
            int(unet_config.get("out_channels", 4)),
            str(path),
            unet_config.get("num_class_embeds"),
            factor=2 ** (len(vae_config["block_out_channels"]) - 1),
            max_noise_level=int(index.get("max_noise_level", MAX_NOISE_LEVEL)),
            noise_betas=_low_res_betas(path),
        )
        unet = unet_config_from_diffusers(unet_config)
        autoencoder = autoencoder_from_diffusers(_weights(path / vae_part), vae_config)
        config = DiffusionConfig(
            unet=unet,
            schedule=schedule,
            loss=DiffusionLossConfig(prediction=prediction),  # type: ignore[arg-type]
            latent_size=int(unet_config.get("sample_size", 64)),
            conditioners=(*text, *concat),
        )
        model = LatentDiffusion(config, autoencoder)
        mapped = unet_state_from_diffusers(_weights(path / "unet"), unet)
        load_state(model.unet, mapped, path / "unet")  # names what is missing or extra
        for conditioner in model.conditioners:
            if isinstance(conditioner, BertConditioner):
                load_state(
                    conditioner.encoder,
                    bert_state_from_diffusers(_weights(path / "bert")),
                    path / "bert",
                )
    except CheckpointError:
        raise
    except (KeyError, ValueError, RuntimeError, FileNotFoundError, ImportError) as error:
        raise CheckpointError(f"{path}: {error}") from error
    return model.to(device).eval()


def _low_res_betas(path: Path) -> tuple[float, float]:
    """The ends of an upscaling pipeline's augmentation schedule (`low_res_scheduler/`), which
    must be LDM's sqrt-linear one; the x4 upscaler's where the folder has none."""
    config_path = path / "low_res_scheduler" / "scheduler_config.json"
    if not config_path.is_file():
        return (0.0001, 0.02)
    config = _json(config_path)
    if config.get("beta_schedule", "linear") != "scaled_linear":
        raise CheckpointError(
            f"{config_path}: beta_schedule {config.get('beta_schedule')!r}; ldmkit's upscaler "
            "augmentation is LDM's sqrt-linear schedule (scaled_linear)"
        )
    return (float(config.get("beta_start", 0.0001)), float(config.get("beta_end", 0.02)))


def bert_condition_from_diffusers(path: Path) -> BertCondition:
    """The `BertCondition` of an LDMTextToImagePipeline folder: `bert/config.json` (an
    LDMBertConfig) and the word pieces in `tokenizer/vocab.txt` (or `tokenizer.json`)."""
    config = _json(path / "bert" / "config.json")
    encoder = BertEncoderConfig(
        vocab_size=int(config["vocab_size"]),
        width=int(config["d_model"]),
        layers=int(config["encoder_layers"]),
        heads=int(config["encoder_attention_heads"]),
        head_dim=int(config["head_dim"]),
        mlp_width=int(config["encoder_ffn_dim"]),
        max_length=int(config["max_position_embeddings"]),
    )
    vocab = path / "tokenizer" / "vocab.txt"
    if not vocab.is_file():  # a folder saved by transformers 5 keeps tokenizer.json only
        vocab = path / "tokenizer" / "tokenizer.json"
    return BertCondition(encoder=encoder, vocab=str(vocab))


def bert_state_from_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LDMBertModel's weights under BertEncoder's names (`model.` dropped, as is the unused
    `to_logits` head)."""
    return {k.removeprefix("model."): v for k, v in state.items() if not k.startswith("to_logits")}


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
    # A variant saved beside none of those (`save_pretrained(variant="fp16")`:
    # diffusion_pytorch_model.fp16.safetensors); read in float32 by the modules' loading.
    variants = sorted(
        path
        for name in WEIGHTS
        for path in folder.glob(name.replace(".", ".*.", 1))
        if path.is_file()
    )
    if len(variants) == 1:
        return read_state(variants[0])[0]
    found = f"; it has the variants {', '.join(p.name for p in variants)}" if variants else ""
    raise CheckpointError(f"{folder} has no weights file ({' or '.join(WEIGHTS)}){found}")
