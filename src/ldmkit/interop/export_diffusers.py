"""An ldmkit model as a diffusers folder: `unet/` (UNet2DConditionModel), `vae/`
(AutoencoderKL or VQModel), `scheduler/` (DDIMScheduler with the model's conventions) and, for a
CLIP-conditioned model, `text_encoder/`, `tokenizer/` and `model_index.json`, so that
`StableDiffusionPipeline.from_pretrained` (or the inpainting and upscaling pipelines) loads it;
an LDMBert-conditioned one (the paper's text-to-image model) becomes an `LDMTextToImagePipeline`
(`vqvae/`, `bert/`, `tokenizer/`). Other conditioners (classes through the UNet's class
embedding excepted) have no diffusers class: their components are written without a pipeline.

The weight names are the readers' (`diffusers_unet`, `diffusers_autoencoder`) run backwards:
diffusers builds the component on the meta device to list its parameter names, and each is
filled from the ldmkit name its reader maps it to, so reading and writing cannot drift apart.
Writing needs `diffusers` installed (the pip extra `test`).
"""

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ldmkit.autoencoder import Autoencoder, AutoencoderConfig
from ldmkit.checkpoint import CheckpointError, write_directory_atomically
from ldmkit.conditioning import (
    BertConditioner,
    ClassConditioner,
    ClipConditioner,
    SpatialConditioner,
)
from ldmkit.conditioning.bert import VOCAB_FILE
from ldmkit.diffusion import ScheduleConfig
from ldmkit.interop.diffusers_autoencoder import autoencoder_key_from_diffusers
from ldmkit.interop.diffusers_folder import SCHEDULES
from ldmkit.interop.diffusers_unet import unet_key_from_diffusers
from ldmkit.interop.export_single_file import folded_first_stage
from ldmkit.interop.keys import as_written
from ldmkit.pipeline import LatentDiffusion
from ldmkit.unet import UNetConfig

WEIGHTS = "diffusion_pytorch_model.safetensors"
PREDICTIONS = {"eps": "epsilon", "v": "v_prediction", "x0": "sample"}
# ldmkit's schedule kind -> diffusers' beta_schedule (the reader's map inverted).
BETA_SCHEDULES = {kind: name for name, kind in SCHEDULES.items()}


def export_diffusers(model: LatentDiffusion, out: Path) -> Path:
    """Write `model` as the diffusers folder `out` (atomically: all or nothing)."""
    pipeline = _pipeline_class(model)
    unet_config = unet_config_to_diffusers(model.config.unet, model.config.latent_size)
    vae_config = autoencoder_config_to_diffusers(model.autoencoder)
    unet = unet_state_to_diffusers(model.unet.state_dict(), model.config.unet, unet_config)
    vae = autoencoder_state_to_diffusers(model.autoencoder, vae_config)
    scheduler = scheduler_config_to_diffusers(model.config.schedule, model.config.loss.prediction)

    def write(folder: Path) -> None:
        _component(folder / "unet", unet_config, unet)
        _component(folder / "vae", vae_config, vae)
        (folder / "scheduler").mkdir()
        (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler, indent=2))
        if pipeline in ("LDMTextToImagePipeline", "LDMPipeline"):
            (folder / "vae").rename(folder / "vqvae")  # the LDM pipelines' name for it
            index = {
                "_class_name": pipeline,
                "_diffusers_version": _diffusers_version(),
                "unet": ["diffusers", unet_config["_class_name"]],
                "vqvae": ["diffusers", vae_config["_class_name"]],
                "scheduler": ["diffusers", "DDIMScheduler"],
            }
            if pipeline == "LDMTextToImagePipeline":
                _write_bert(model, folder)
                index |= {
                    "bert": ["latent_diffusion", "LDMBertModel"],
                    "tokenizer": ["transformers", "BertTokenizer"],
                }
            (folder / "model_index.json").write_text(json.dumps(index, indent=2))
        elif pipeline is not None:
            _write_clip(model, folder)
            index = {
                "_class_name": pipeline,
                "_diffusers_version": _diffusers_version(),
                "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", vae_config["_class_name"]],
                "scheduler": ["diffusers", "DDIMScheduler"],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"],
                "safety_checker": [None, None],
                "feature_extractor": [None, None],
                "requires_safety_checker": False,
            }
            if pipeline == "StableDiffusionUpscalePipeline":
                index |= _low_res_scheduler(model, folder)
            (folder / "model_index.json").write_text(json.dumps(index, indent=2))

    return write_directory_atomically(Path(out), write)


def unet_config_to_diffusers(config: UNetConfig, sample_size: int) -> dict[str, Any]:
    """The UNet2DConditionModel config of `config` (`unet_config_from_diffusers` inverted)."""
    if config.position_frequencies or config.resblock_updown or not config.conv_resample:
        raise CheckpointError(
            "this UNet uses options diffusers' UNet2DConditionModel does not have (position "
            "frequencies, resblock up/down, no conv resampling)"
        )
    if not config.use_spatial_transformer:
        return _unet_2d_config(config, sample_size)
    if config.context_dim is None:
        raise CheckpointError(
            "this UNet's transformers have self-attention only (context_dim None); diffusers' "
            "UNet2DConditionModel needs cross-attention in them, so it has no class for this UNet"
        )
    levels = len(config.channel_mult)
    channels = [config.model_channels * m for m in config.channel_mult]
    attention = [i for i in range(levels) if 2**i in config.attention_resolutions]
    down = ["CrossAttnDownBlock2D" if i in attention else "DownBlock2D" for i in range(levels)]
    up = [
        "CrossAttnUpBlock2D" if levels - 1 - i in attention else "UpBlock2D" for i in range(levels)
    ]
    if config.num_heads is not None:
        heads: int | list[int] = config.num_heads
    else:
        assert config.num_head_channels is not None
        heads = [c // config.num_head_channels for c in channels]
    return {
        "_class_name": "UNet2DConditionModel",
        "sample_size": sample_size,
        "in_channels": config.in_channels,
        "out_channels": config.out_channels,
        "block_out_channels": channels,
        "layers_per_block": config.num_res_blocks,
        "down_block_types": down,
        "up_block_types": up,
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "attention_head_dim": heads,  # the number of heads (see diffusers_unet)
        "transformer_layers_per_block": config.transformer_depth,
        "cross_attention_dim": config.context_dim,
        "use_linear_projection": config.use_linear_in_transformer,
        "only_cross_attention": list(config.only_cross_attention) or False,
        "num_class_embeds": config.num_classes,
        "resnet_time_scale_shift": "scale_shift" if config.use_scale_shift_norm else "default",
        "norm_num_groups": config.norm_groups,
        "dropout": config.dropout,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "act_fn": "silu",
        "norm_eps": 1e-5,
        "downsample_padding": 1,
        "center_input_sample": False,
    }


def unet_state_to_diffusers(
    state: dict[str, torch.Tensor], config: UNetConfig, diffusers_config: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """ldmkit's UNet weights under UNet2DConditionModel's (or UNet2DModel's) names."""
    import diffusers

    kind = getattr(diffusers, diffusers_config["_class_name"])
    names = _names(kind, diffusers_config)
    if not config.use_spatial_transformer:
        state = _split_attention(state, config)
    return _mapped(state, {name: unet_key_from_diffusers(name, config) for name in names}, "UNet")


def _unet_2d_config(config: UNetConfig, sample_size: int) -> dict[str, Any]:
    """The UNet2DModel config of a UNet with plain attention blocks (`unet_2d_config_from_
    diffusers` inverted): its `attention_head_dim` is the head width."""
    if config.num_classes is not None:
        raise CheckpointError("a plain-attention UNet with a class table has no diffusers class")
    levels = len(config.channel_mult)
    channels = [config.model_channels * m for m in config.channel_mult]
    widths = {c // config.heads_at(c)[0] for c in channels}
    if len(widths) != 1:
        raise CheckpointError("UNet2DModel needs one head width at every level")
    attention = [i for i in range(levels) if 2**i in config.attention_resolutions]
    return {
        "_class_name": "UNet2DModel",
        "sample_size": sample_size,
        "in_channels": config.in_channels,
        "out_channels": config.out_channels,
        "block_out_channels": channels,
        "layers_per_block": config.num_res_blocks,
        "down_block_types": [
            "AttnDownBlock2D" if i in attention else "DownBlock2D" for i in range(levels)
        ],
        "up_block_types": [
            "AttnUpBlock2D" if levels - 1 - i in attention else "UpBlock2D" for i in range(levels)
        ],
        "attention_head_dim": widths.pop(),
        "norm_num_groups": config.norm_groups,
        "resnet_time_scale_shift": "scale_shift" if config.use_scale_shift_norm else "default",
        "dropout": config.dropout,
        "add_attention": True,
    }


def _split_attention(state: dict[str, torch.Tensor], config: UNetConfig) -> dict[str, torch.Tensor]:
    """Plain attention blocks (`norm`, fused `qkv`, `proj_out`) under the names of diffusers'
    `Attention` (`group_norm`, `to_q`, `to_k`, `to_v`, `to_out.0`): the reader's fusion
    (`diffusers_unet._fused_attention`) undone."""
    out: dict[str, torch.Tensor] = {}
    blocks = {key.rsplit(".qkv.", 1)[0] for key in state if ".qkv." in key}
    for key, value in state.items():
        block = next((b for b in blocks if key.startswith(b + ".")), None)
        if block is None:
            out[key] = value
            continue
        part, kind = key[len(block) + 1 :].rsplit(".", 1)
        if part == "norm":
            out[f"{block}.group_norm.{kind}"] = value
        elif part == "proj_out":
            out[f"{block}.to_out.0.{kind}"] = value[..., 0] if kind == "weight" else value
        elif part == "qkv":
            flat = value[..., 0] if kind == "weight" else value  # (3C, C) or (3C,)
            channels = flat.shape[0] // 3
            heads, _ = config.heads_at(channels)
            per_head = flat.reshape(heads, 3, channels // heads, *flat.shape[1:])
            for i, name in enumerate("qkv"):
                out[f"{block}.to_{name}.{kind}"] = per_head[:, i].reshape(channels, *flat.shape[1:])
    return out


def autoencoder_config_to_diffusers(autoencoder: Autoencoder) -> dict[str, Any]:
    """The AutoencoderKL (or VQModel) config of `autoencoder`; its latent shift is folded into
    the weights (`folded_first_stage`), its scale becomes `scaling_factor`."""
    ae: AutoencoderConfig = autoencoder.config
    if ae.kind not in ("kl", "vq") or ae.patch != 1 or ae.attn_factors:
        raise CheckpointError(
            "diffusers' autoencoders have no patch stem and no attention inside the levels; "
            "this first stage cannot be written for diffusers"
        )
    levels = len(ae.channel_mult)
    config: dict[str, Any] = {
        "_class_name": "AutoencoderKL" if ae.kind == "kl" else "VQModel",
        "in_channels": ae.in_channels,
        "out_channels": ae.out_channels,
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
        "block_out_channels": [ae.model_channels * m for m in ae.channel_mult],
        "layers_per_block": ae.num_res_blocks,
        "latent_channels": ae.z_channels,
        "norm_num_groups": ae.norm_groups,
        "act_fn": "silu",
        "mid_block_add_attention": ae.mid_attention,
        "scaling_factor": as_written(autoencoder.latent_scale),
    }
    if ae.kind == "vq":
        config |= {"num_vq_embeddings": ae.codebook_size, "vq_embed_dim": ae.z_channels}
    return config


def autoencoder_state_to_diffusers(
    autoencoder: Autoencoder, diffusers_config: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """The first stage's weights (shift folded in) under diffusers' names, attention
    projections as linear weights."""
    import diffusers

    kind = getattr(diffusers, diffusers_config["_class_name"])
    levels = len(diffusers_config["block_out_channels"])
    names = _names(kind, diffusers_config)
    source = {name: autoencoder_key_from_diffusers(name, levels) for name in names}
    state = folded_first_stage(autoencoder)
    state.pop("quantize.usage", None)  # VQ training's dead-code counts, not a weight
    out = _mapped(state, source, "autoencoder")
    return {k: v[:, :, 0, 0] if v.ndim == 4 and ".attentions." in k else v for k, v in out.items()}


def scheduler_config_to_diffusers(schedule: ScheduleConfig, prediction: str) -> dict[str, Any]:
    """A DDIMScheduler config with the model's schedule, objective and sampling conventions."""
    if schedule.kind == "cosine" and schedule.cosine_s != 0.008:
        raise CheckpointError("diffusers' cosine schedule (squaredcos_cap_v2) has s = 0.008")
    return {
        "_class_name": "DDIMScheduler",
        "num_train_timesteps": schedule.num_timesteps,
        "beta_start": schedule.beta_start,
        "beta_end": schedule.beta_end,
        "beta_schedule": BETA_SCHEDULES[schedule.kind],
        "prediction_type": PREDICTIONS[prediction],
        "steps_offset": schedule.steps_offset,
        "set_alpha_to_one": schedule.set_alpha_to_one,
        "rescale_betas_zero_snr": schedule.zero_terminal_snr,
        "clip_sample": False,
        "timestep_spacing": "leading",
    }


def _pipeline_class(model: LatentDiffusion) -> str | None:
    """The diffusers pipeline that runs `model`, or None where only its components can be
    written (a conditioner diffusers has no class for, such as ldmkit's own text encoder;
    class labels are the UNet's own `num_class_embeds`)."""
    kinds = {type(c) for c in model.conditioners}
    spatial = [c for c in model.conditioners if isinstance(c, SpatialConditioner)]
    if kinds == {ClipConditioner}:
        return "StableDiffusionPipeline"
    if kinds == {BertConditioner}:
        return "LDMTextToImagePipeline"
    if not kinds and not model.config.unet.use_spatial_transformer:
        return "LDMPipeline"  # unconditional, plain attention: the paper's unconditional models
    if kinds == {ClipConditioner, SpatialConditioner}:
        if spatial[0].config.kind == "inpaint" and spatial[0].config.layout == "stable_diffusion":
            return "StableDiffusionInpaintPipeline"
        if spatial[0].config.kind == "super_resolution" and spatial[0].config.noise_levels:
            return "StableDiffusionUpscalePipeline"
    return None


def conditioners_left_out(model: LatentDiffusion) -> list[str]:
    """The model's conditioners that an export for diffusers does not carry (no class)."""
    if _pipeline_class(model) is not None:
        return []
    return [c.kind for c in model.conditioners if not isinstance(c, ClassConditioner)]


def _low_res_scheduler(model: LatentDiffusion, folder: Path) -> dict[str, Any]:
    """The upscaler's augmentation schedule as `low_res_scheduler/` (a DDPMScheduler) and the
    model_index entries that name it and the largest noise level."""
    spatial = model.spatial
    assert spatial is not None  # by _pipeline_class
    (folder / "low_res_scheduler").mkdir()
    config = {
        "_class_name": "DDPMScheduler",
        "num_train_timesteps": spatial.noise_levels,
        "beta_start": spatial.noise_beta_start,
        "beta_end": spatial.noise_beta_end,
        "beta_schedule": "scaled_linear",  # LDM's sqrt-linear
    }
    path = folder / "low_res_scheduler" / "scheduler_config.json"
    path.write_text(json.dumps(config, indent=2))
    return {
        "low_res_scheduler": ["diffusers", "DDPMScheduler"],
        "max_noise_level": spatial.max_noise_level,
    }


def _write_bert(model: LatentDiffusion, folder: Path) -> None:
    """LDMBert as diffusers stores it (`bert/`: an LDMBertConfig and the weights under
    `model.`) and its word pieces (`tokenizer/vocab.txt`)."""
    bert = model.conditioner("prompts")
    assert isinstance(bert, BertConditioner)  # by _pipeline_class
    c = bert.encoder.config
    config = {
        "architectures": ["LDMBertModel"],
        "model_type": "ldmbert",
        "vocab_size": c.vocab_size,
        "max_position_embeddings": c.max_length,
        "d_model": c.width,
        "encoder_layers": c.layers,
        "encoder_attention_heads": c.heads,
        "head_dim": c.head_dim,
        "encoder_ffn_dim": c.mlp_width,
        "activation_function": "gelu",
        "pad_token_id": 0,
    }
    (folder / "bert").mkdir()
    (folder / "bert" / "config.json").write_text(json.dumps(config, indent=2))
    weights = {f"model.{k}": v.detach().contiguous() for k, v in bert.encoder.state_dict().items()}
    save_file(weights, str(folder / "bert" / "model.safetensors"), metadata={"format": "pt"})
    (folder / "tokenizer").mkdir()
    bert.save_files(folder / "tokenizer")
    (folder / "tokenizer" / VOCAB_FILE).rename(folder / "tokenizer" / "vocab.txt")
    tokenizer_config = {"tokenizer_class": "BertTokenizer", "do_lower_case": True}
    (folder / "tokenizer" / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))


def _write_clip(model: LatentDiffusion, folder: Path) -> None:
    """CLIP as diffusers stores it: a model whose last layer is the context (a 2.x tower read
    at its penultimate layer is written without its last layer) and its tokenizer."""
    from transformers import CLIPTextModel

    clip = model.clip
    assert clip is not None  # by _pipeline_class
    text = clip.model
    if clip.config.layer == "penultimate":
        config = text.config.__class__.from_dict(
            {**text.config.to_dict(), "num_hidden_layers": text.config.num_hidden_layers - 1}
        )
        cut = CLIPTextModel(config)
        cut.load_state_dict(text.state_dict(), strict=False)  # all but the last layer
        text = cut
    text.save_pretrained(folder / "text_encoder", safe_serialization=True)
    clip.tokenizer.save_pretrained(folder / "tokenizer")


def _names(kind: Any, config: dict[str, Any]) -> list[str]:
    """The parameter and buffer names of the diffusers component `kind` built from `config`."""
    settings = {k: v for k, v in config.items() if not k.startswith("_")}
    with torch.device("meta"):
        return list(kind.from_config(settings).state_dict())


def _mapped(
    state: dict[str, torch.Tensor], source: dict[str, str], what: str
) -> dict[str, torch.Tensor]:
    """{diffusers name: state[its ldmkit name]}, every ldmkit weight used exactly once."""
    missing = sorted({name for name in source.values() if name not in state})
    unused = sorted(set(state) - set(source.values()))
    if missing or unused:
        raise CheckpointError(
            f"the {what} does not map onto diffusers' one to one: "
            f"missing {missing[:5]}, unused {unused[:5]}"
        )
    return {name: state[ours] for name, ours in source.items()}


def _component(folder: Path, config: dict[str, Any], state: dict[str, torch.Tensor]) -> None:
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({**config, "_diffusers_version": _diffusers_version()}, indent=2)
    )
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    save_file(tensors, str(folder / WEIGHTS), metadata={"format": "pt"})


def _diffusers_version() -> str:
    import diffusers

    return str(diffusers.__version__)
