"""An ldmkit model as a Stable Diffusion single file, and the original YAML config beside it.

The weights go under the CompVis names (`model.diffusion_model.*`, `first_stage_model.*`,
`cond_stage_model.*`, the schedule's `betas` / `alphas_cumprod`); ldmkit keeps those names, so
only CLIP's change (transformers' -> `cond_stage_model.transformer.text_model.*`, or OpenCLIP's
for a 2.x-style text tower). What the weights do not record (the latent scale, the
parameterisation, the heads, the schedule) goes into `OUT.yaml` in the format of the CompVis /
Stability configs (`v1-inference.yaml`), which `ldmkit sample --config`, the web UIs and
diffusers' `from_single_file(original_config=)` read. A latent shift (ldmkit measures one when
it trains a first stage) has no place in that format: it is folded into the first stage's
`quant_conv` / `post_quant_conv` biases (and a VQ codebook), which leaves every output the same.
"""

from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file

from ldmkit.autoencoder import Autoencoder
from ldmkit.checkpoint import CheckpointError, write_file
from ldmkit.conditioning import ClipConditioner, SpatialConditioner
from ldmkit.interop.keys import as_written
from ldmkit.interop.openclip import hf_to_openclip
from ldmkit.pipeline import LatentDiffusion

UNET, FIRST_STAGE = "model.diffusion_model.", "first_stage_model."
CLIP_L, OPENCLIP = "cond_stage_model.transformer.text_model.", "cond_stage_model.model."
# The CompVis first stage's nominal training resolution (its attention levels are given in it).
RESOLUTION = 256
# ldmkit's schedule kind -> the CompVis code's `beta_schedule` (`make_beta_schedule`), where
# "linear" is linear in sqrt(beta) and "sqrt_linear" linear in beta itself.
BETA_SCHEDULES = {"linear": "linear", "cosine": "cosine", "beta_linear": "sqrt_linear"}


def export_single_file(model: LatentDiffusion, out: Path) -> tuple[Path, Path]:
    """Write `model` as the single file `out` (.safetensors) and its original config beside it
    (`out` with .yaml); both written atomically. Returns the two paths."""
    out = Path(out)
    if out.suffix != ".safetensors":
        raise CheckpointError(f"{out}: a single file is written as .safetensors")
    state = single_file_state(model)
    config = original_config(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    contiguous = {key: value.detach().contiguous().cpu() for key, value in state.items()}
    write_file(out, lambda tmp: save_file(contiguous, str(tmp), metadata={"format": "pt"}))
    config_path = out.with_suffix(".yaml")
    write_file(config_path, lambda tmp: tmp.write_text(yaml.safe_dump(config, sort_keys=False)))
    return out, config_path


def single_file_state(model: LatentDiffusion) -> dict[str, torch.Tensor]:
    """The model's tensors under a Stable Diffusion single file's names."""
    clip = _clip(model)
    state = {UNET + key: value for key, value in model.unet.state_dict().items()}
    first_stage = folded_first_stage(model.autoencoder)
    state |= {FIRST_STAGE + key: value for key, value in first_stage.items()}
    text = {
        key.removeprefix("text_model."): value
        for key, value in clip.model.state_dict().items()
        if not key.endswith("position_ids")
    }
    if _is_openclip(clip):
        # A tower already without its unused last block (a diffusers Stable Diffusion 2
        # folder's 23 layers) is written as it is: the original code runs ViT-H's first 23.
        state |= {OPENCLIP + key: value for key, value in hf_to_openclip(text).items()}
    else:
        state |= {CLIP_L + key: value for key, value in text.items()}
    schedule = model.schedule
    state["betas"] = schedule.betas.float()
    state["alphas_cumprod"] = schedule.alpha_bar.float()
    state["alphas_cumprod_prev"] = torch.cat([torch.ones(1), schedule.alpha_bar[:-1]]).float()
    return state


def folded_first_stage(autoencoder: Autoencoder) -> dict[str, torch.Tensor]:
    """The first stage's weights with its latent shift folded into the biases around the
    latent (and the codebook), so that (z - shift) becomes the encoder's own output; without
    the `latent_scale` / `latent_shift` buffers, which the YAML's scale_factor replaces."""
    state = {
        key: value.clone()
        for key, value in autoencoder.state_dict().items()
        if not key.startswith("latent_")
    }
    shift = float(autoencoder.latent_shift)
    if shift == 0.0:
        return state
    z = autoencoder.config.z_channels
    state["quant_conv.bias"][:z] -= shift  # the mean (KL) or the pre-quantisation latent (VQ)
    if "quantize.embedding.weight" in state:
        state["quantize.embedding.weight"] -= shift
    weight = state["post_quant_conv.weight"][:, :, 0, 0]  # (z, z): z_new + shift -> W z + b
    state["post_quant_conv.bias"] += shift * weight.sum(1)
    return state


def original_config(model: LatentDiffusion) -> dict[str, Any]:
    """The CompVis / Stability YAML config (as a dict) that describes `model`."""
    config, unet, schedule = model.config, model.config.unet, model.config.schedule
    clip = _clip(model)
    inpaint = _spatial_kind(model) == "inpaint"
    upscale = _spatial_kind(model) == "super_resolution"
    if config.coordinate_channels or unet.position_frequencies or unet.resblock_updown:
        raise CheckpointError(
            "this UNet uses options the CompVis UNet does not have (coordinate channels, "
            "position frequencies, resblock up/down): it cannot be written as a single file"
        )
    if unet.norm_groups != 32 or not unet.conv_resample:
        raise CheckpointError("the CompVis UNet has 32 norm groups and conv resampling")
    heads = (
        {"num_heads": unet.num_heads}
        if unet.num_heads is not None
        else {"num_head_channels": unet.num_head_channels}
    )
    unet_params: dict[str, Any] = {
        "image_size": config.latent_size,
        "in_channels": unet.in_channels,
        "out_channels": unet.out_channels,
        "model_channels": unet.model_channels,
        "attention_resolutions": list(unet.attention_resolutions),
        "num_res_blocks": unet.num_res_blocks,
        "channel_mult": list(unet.channel_mult),
        **heads,
        "use_spatial_transformer": unet.use_spatial_transformer,
        "transformer_depth": unet.transformer_depth,
        "context_dim": unet.context_dim,
        "use_linear_in_transformer": unet.use_linear_in_transformer,
        **(
            {"disable_self_attentions": list(unet.only_cross_attention)}
            if unet.only_cross_attention
            else {}
        ),
        "use_scale_shift_norm": unet.use_scale_shift_norm,
        "use_checkpoint": False,
        "legacy": False,
    }
    cond_stage: dict[str, Any] = {"target": "ldm.modules.encoders.modules.FrozenCLIPEmbedder"}
    if _is_openclip(clip):
        cond_stage = {
            "target": "ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder",
            "params": {"freeze": True, "layer": "penultimate"},
        }
    params: dict[str, Any] = {
        "linear_start": schedule.beta_start,
        "linear_end": schedule.beta_end,
        "beta_schedule": BETA_SCHEDULES[schedule.kind],
        "timesteps": schedule.num_timesteps,
        "num_timesteps_cond": 1,
        "log_every_t": 200,
        "first_stage_key": "jpg",
        "cond_stage_key": "txt",
        "image_size": config.latent_size,
        "channels": unet.out_channels,
        "cond_stage_trainable": False,
        "conditioning_key": "hybrid" if inpaint else "crossattn",
        "monitor": "val/loss_simple_ema",
        "scale_factor": as_written(model.autoencoder.latent_scale),
        "use_ema": False,
        "parameterization": config.loss.prediction,
        "unet_config": {
            "target": "ldm.modules.diffusionmodules.openaimodel.UNetModel",
            "params": unet_params,
        },
        "first_stage_config": _first_stage_config(model.autoencoder),
        "cond_stage_config": cond_stage,
    }
    if inpaint:
        params |= {"concat_keys": ["mask", "masked_image"], "masked_image_key": "masked_image"}
    if upscale:
        spatial = model.spatial
        assert spatial is not None
        unet_params["num_classes"] = spatial.noise_levels
        params |= {
            "conditioning_key": "hybrid-adm",
            "low_scale_key": "lr",
            "low_scale_config": {
                "target": "ldm.modules.diffusionmodules.upscaling.ImageConcatWithNoiseAugmentation",
                "params": {
                    "noise_schedule_config": {
                        "linear_start": spatial.noise_beta_start,
                        "linear_end": spatial.noise_beta_end,
                    },
                    "max_noise_level": spatial.max_noise_level,
                },
            },
        }
    kind = "LatentInpaintDiffusion" if inpaint else "LatentUpscaleDiffusion" if upscale else None
    target = "ldm.models.diffusion.ddpm." + (kind or "LatentDiffusion")
    return {"model": {"target": target, "params": params}}


def _first_stage_config(autoencoder: Autoencoder) -> dict[str, Any]:
    ae = autoencoder.config
    if ae.kind not in ("kl", "vq") or ae.patch != 1 or not ae.mid_attention:
        raise CheckpointError(
            "the CompVis first stage is a KL or VQ autoencoder with a mid-block attention and no "
            "patch stem; this one cannot be written as a single file"
        )
    if ae.norm_groups != 32:
        raise CheckpointError("the CompVis first stage has 32 norm groups")
    ddconfig = {
        "double_z": ae.kind == "kl",
        "z_channels": ae.z_channels,
        "resolution": RESOLUTION,
        "in_channels": ae.in_channels,
        "out_ch": ae.out_channels,
        "ch": ae.model_channels,
        "ch_mult": list(ae.channel_mult),
        "num_res_blocks": ae.num_res_blocks,
        "attn_resolutions": [RESOLUTION // f for f in ae.attn_factors],
        "dropout": 0.0,
    }
    params: dict[str, Any] = {
        "embed_dim": ae.z_channels,
        "ddconfig": ddconfig,
        "lossconfig": {"target": "torch.nn.Identity"},
    }
    if ae.kind == "vq":
        params["n_embed"] = ae.codebook_size
        return {"target": "ldm.models.autoencoder.VQModelInterface", "params": params}
    return {"target": "ldm.models.autoencoder.AutoencoderKL", "params": params}


def _clip(model: LatentDiffusion) -> Any:
    """The model's CLIP text encoder; other conditioners have no place in a single file."""
    others = [
        c for c in model.conditioners if not isinstance(c, ClipConditioner) and not _sd_spatial(c)
    ]
    clip = model.clip
    if others or clip is None:
        kinds = ", ".join(c.kind for c in others) or "no text encoder"
        raise CheckpointError(
            f"a Stable Diffusion single file holds a UNet, a first stage and CLIP; this model has "
            f"{kinds}: keep its ldmkit folder (or export --format diffusers)"
        )
    return clip


def _sd_spatial(conditioner: object) -> bool:
    """A Stable Diffusion map: the inpainting layout, or the x4 upscaler's augmented image."""
    if not isinstance(conditioner, SpatialConditioner):
        return False
    spatial = conditioner.config
    return (spatial.kind == "inpaint" and spatial.layout == "stable_diffusion") or (
        spatial.kind == "super_resolution" and spatial.noise_levels > 0
    )


def _spatial_kind(model: LatentDiffusion) -> str | None:
    spatial = model.spatial
    return None if spatial is None else spatial.kind


def _is_openclip(clip: Any) -> bool:
    """SD 2.x's OpenCLIP ViT-H tower (read at its penultimate layer, or already cut there;
    exact GELU) rather than SD 1.x's CLIP ViT-L (quick GELU)."""
    act = getattr(clip.model.config, "hidden_act", "quick_gelu")
    return clip.config.layer == "penultimate" or act != "quick_gelu"
