"""Stable Diffusion single files' families: the key prefixes that name their parts, what each
family's weights do not record (`Family`: heads, latent scale, prediction, training size, an
upscaler's noise augmentation), which family a file's keys and shapes say it is, and what an
original YAML config says instead (`--config`)."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ldmkit.checkpoint import CheckpointError
from ldmkit.interop.compvis import original_params
from ldmkit.interop.concat_inputs import MAX_NOISE_LEVEL, NOISE_BETAS
from ldmkit.progress import notice

UNET, FIRST_STAGE = "model.diffusion_model.", "first_stage_model."
CLIP_PREFIXES = ("cond_stage_model.transformer.text_model.", "cond_stage_model.transformer.")


@dataclass(frozen=True)
class Family:
    """What a checkpoint family's weights do not record."""

    name: str
    num_heads: int | None  # a fixed number of heads in every transformer, or
    num_head_channels: int | None  # a fixed width per head
    latent_scale: float
    prediction: str
    latent_size: int  # the side it was trained at (512 px / 8)
    # Per level, transformers whose attn1 reads the context (an original YAML's
    # `disable_self_attentions`); None: found from the weights' widths.
    only_cross_attention: tuple[bool, ...] | None = None
    # An upscaler's noise augmentation (an original YAML's `low_scale_config`): the largest
    # noise level and the ends of its sqrt-linear schedule; the x4 upscaler's by default.
    max_noise_level: int = MAX_NOISE_LEVEL
    noise_betas: tuple[float, float] = NOISE_BETAS


FAMILIES = {
    "sd1": Family("Stable Diffusion 1.x", 8, None, 0.18215, "eps", 64),
    # 2.x: 64-wide heads; the 768-v model predicts v at 96x96 latents, the 512 base eps at 64.
    "sd2-v": Family("Stable Diffusion 2.x (768-v)", None, 64, 0.18215, "v", 96),
    "sd2-base": Family("Stable Diffusion 2.x (512 base)", None, 64, 0.18215, "eps", 64),
    # The x4 upscaler: 8 heads in every transformer (x4-upscaling.yaml's num_heads, not 2.x's
    # 64-wide heads), v, an f=4 first stage scaled by 0.08333, 128x128 latents (512 px out).
    "sd2-x4": Family("Stable Diffusion x4 upscaler", 8, None, 0.08333, "v", 128),
}
OPENCLIP = "cond_stage_model.model."
# The x4 upscaler's `low_scale_config`: the low-resolution image noised and concatenated.
AUGMENTATION = "ldm.modules.diffusionmodules.upscaling.ImageConcatWithNoiseAugmentation"
# The 512 base model's training steps, which its .ckpt records (the 768-v model's differ).
SD2_BASE_STEPS = 875000


def file_kind(state: Mapping[str, torch.Tensor], path: Path) -> str:
    """The file's kind from the keys of `state`, "sd1" or "sd2"; anything else is an error
    that says what was recognised."""
    found = sorted({key.split(".")[0] for key in state})
    if f"{UNET}input_blocks.0.0.weight" not in state:
        raise CheckpointError(
            f"{path} is not a latent diffusion checkpoint ldmkit recognises: no "
            f"{UNET}* UNet (its top-level keys: {', '.join(found[:8])})"
        )
    if f"{OPENCLIP}token_embedding.weight" in state:
        return "sd2"
    if not any(key.startswith(CLIP_PREFIXES[1]) for key in state):  # no OpenAI CLIP either
        raise CheckpointError(
            f"{path}: a UNet without a CLIP text encoder (cond_stage_model.transformer.*); "
            f"the CompVis model-zoo families are not read yet (top-level keys: {', '.join(found)})"
        )
    return "sd1"


def detect_family(
    state: Mapping[str, torch.Tensor],
    path: Path,
    info: Mapping[str, Any] | None = None,
    prediction: str | None = None,
) -> Family:
    """The checkpoint family of `state`, from its keys (`file_kind`). A 2.x file does not say
    whether it predicts v (768-v) or eps (512 base): `prediction` says so, else a .ckpt's
    `global_step`, else v (said in a notice)."""
    if file_kind(state, path) == "sd2":
        if _in_channels(state) == 7 and f"{UNET}label_emb.weight" in state:
            if prediction not in (None, "v"):
                raise CheckpointError(f"{path} is the x4 upscaler: it predicts v")
            return FAMILIES["sd2-x4"]
        if prediction is None and _in_channels(state) == 9:
            prediction = "eps"  # 2.x inpainting is the 512 base model's fine-tune
        if prediction is None:
            base = (info or {}).get("global_step") == SD2_BASE_STEPS
            if not base:
                notice(
                    f"{path}: a Stable Diffusion 2.x file, read as the 768-v model (v "
                    "prediction, 96x96 latents); pass --prediction eps for the 512 base model"
                )
            prediction = "eps" if base else "v"
        if prediction not in ("eps", "v"):
            raise CheckpointError(f"--prediction must be eps or v, not {prediction!r}")
        return FAMILIES["sd2-v" if prediction == "v" else "sd2-base"]
    if prediction not in (None, "eps"):
        raise CheckpointError(f"{path} is a Stable Diffusion 1.x file: it predicts eps")
    return FAMILIES["sd1"]


def _in_channels(state: Mapping[str, torch.Tensor]) -> int:
    weight = state.get(UNET + "input_blocks.0.0.weight")
    return int(weight.shape[1]) if weight is not None else 4


def family_from_original_config(path: Path) -> Family:
    """What an original LDM / Stable Diffusion YAML config (`v1-inference.yaml`,
    `v2-inference-v.yaml`, `x4-upscaling.yaml`) says that the weights do not: the
    parameterisation, the UNet's heads, the latent scale and size, an upscaler's noise
    augmentation. Given with a file, it overrides detection."""
    params = original_params(path)
    unet = params.get("unet_config", {}).get("params") if isinstance(params, dict) else None
    if not isinstance(unet, dict):
        raise CheckpointError(
            f"--config {path} has no model.params.unet_config.params: it is not an original "
            "LDM / Stable Diffusion config"
        )
    heads, head_channels = unet.get("num_heads", -1), unet.get("num_head_channels", -1)
    if not (heads and heads > 0) and not (head_channels and head_channels > 0):
        raise CheckpointError(f"--config {path}: neither num_heads nor num_head_channels is set")
    prediction = params.get("parameterization", "eps")
    if prediction not in ("eps", "v", "x0"):
        raise CheckpointError(f"--config {path}: parameterization {prediction!r} is not eps or v")
    return Family(
        name=f"as {Path(path).name} says",
        num_heads=heads if heads and heads > 0 else None,
        num_head_channels=head_channels if head_channels and head_channels > 0 else None,
        latent_scale=float(params.get("scale_factor", 0.18215)),
        prediction=prediction,
        latent_size=int(params.get("image_size", 64)),
        only_cross_attention=(
            tuple(bool(f) for f in unet["disable_self_attentions"])
            if unet.get("disable_self_attentions")
            else None
        ),
        **noise_augmentation_from_original_config(params, path),
    )


def noise_augmentation_from_original_config(
    params: Mapping[str, Any], path: Path
) -> dict[str, Any]:
    """An upscaler's noise augmentation as `Family` fields, from the YAML's `low_scale_config`
    (`ImageConcatWithNoiseAugmentation`: `noise_schedule_config` {linear_start, linear_end},
    `max_noise_level`); {} (the x4 upscaler's values) where the YAML has none, and a key the
    block leaves out keeps its default. What ldmkit cannot reproduce is an error naming it."""
    block = params.get("low_scale_config")
    if block is None:
        return {}
    target = block.get("target", AUGMENTATION) if isinstance(block, dict) else block
    if target != AUGMENTATION:
        raise CheckpointError(
            f"--config {path}: low_scale_config is {target!r}; ldmkit reads the x4 upscaler's "
            f"{AUGMENTATION} only"
        )
    augmentation = block.get("params") or {}
    schedule = (
        (augmentation.get("noise_schedule_config") or {})
        if isinstance(augmentation, dict)
        else None
    )
    if not isinstance(schedule, dict):
        raise CheckpointError(
            f"--config {path}: low_scale_config.params and its noise_schedule_config must be "
            "mappings"
        )
    rows = _noise_levels(params, schedule, path)
    ends = (
        schedule.get("linear_start", NOISE_BETAS[0]),
        schedule.get("linear_end", NOISE_BETAS[1]),
    )
    try:  # PyYAML reads 1e-4 (no dot) as a string
        start, end = float(ends[0]), float(ends[1])
    except (TypeError, ValueError):
        start = end = float("nan")
    if not 0 < start <= end < 1:
        raise CheckpointError(
            f"--config {path}: low_scale_config's noise_schedule_config needs 0 < linear_start "
            f"<= linear_end < 1, got {ends[0]!r}, {ends[1]!r}"
        )
    level = augmentation.get("max_noise_level", MAX_NOISE_LEVEL)
    if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level < rows:
        raise CheckpointError(
            f"--config {path}: low_scale_config's max_noise_level must be an integer in "
            f"[0, {rows - 1}] (below the {rows} noise levels), got {level!r}"
        )
    return {"max_noise_level": level, "noise_betas": (start, end)}


def _noise_levels(params: Mapping[str, Any], schedule: Mapping[str, Any], path: Path) -> int:
    """The number of noise levels of an upscaler's augmentation (the UNet's class rows, the
    x4 upscaler's 1000 unless `unet_config` says otherwise); a `noise_schedule_config` that
    ldmkit's augmentation does not follow (LDM's sqrt-linear schedule, one step per level) is
    an error naming the key."""
    kind = schedule.get("beta_schedule", "linear")
    if kind != "linear":
        raise CheckpointError(
            f"--config {path}: low_scale_config's beta_schedule is {kind!r}; ldmkit's noise "
            "augmentation is LDM's sqrt-linear schedule (beta_schedule: linear)"
        )
    rows = params["unet_config"]["params"].get("num_classes") or 1000
    steps = schedule.get("timesteps", rows)
    if steps != rows:
        raise CheckpointError(
            f"--config {path}: low_scale_config's timesteps is {steps!r}, but the UNet has "
            f"{rows} noise levels (unet_config num_classes); set timesteps: {rows} or leave it out"
        )
    return int(rows)
