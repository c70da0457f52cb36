"""diffusers `UNet2DConditionModel` weights and config -> ldmkit's UNet.

ldmkit keeps the CompVis names (`input_blocks.1.0.in_layers.0`, `middle_block.1.proj_in`, ...);
diffusers groups them per level (`down_blocks.0.resnets.0.norm1`, `mid_block.attentions.0`) and
stores the up path in application order. Transformer internals share their names. diffusers'
`attention_head_dim` is, despite its name, the number of heads (diffusers issue #2011).
"""

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ldmkit.checkpoint import load_state
from ldmkit.unet import UNet, UNetConfig

_CROSS_DOWN, _PLAIN_DOWN = "CrossAttnDownBlock2D", "DownBlock2D"
_CROSS_UP, _PLAIN_UP = "CrossAttnUpBlock2D", "UpBlock2D"

# Options whose other values change the network in ways ldmkit's UNet does not implement.
_REQUIRED: dict[str, Any] = {
    "center_input_sample": False,
    "flip_sin_to_cos": True,  # cos first, as in CompVis
    "freq_shift": 0,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_eps": 1e-5,
    "encoder_hid_dim": None,
    "encoder_hid_dim_type": None,
    "dual_cross_attention": False,
    "class_embed_type": None,
    "addition_embed_type": None,
    "resnet_skip_time_act": False,
    "resnet_out_scale_factor": 1.0,
    "time_embedding_type": "positional",
    "time_embedding_dim": None,
    "time_embedding_act_fn": None,
    "timestep_post_act": None,
    "time_cond_proj_dim": None,
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
    "attention_type": "default",
    "class_embeddings_concat": False,
    "cross_attention_norm": None,
    "reverse_transformer_layers_per_block": None,
    "num_attention_heads": None,
}

_TOP_LEVEL = {
    "conv_in.": "input_blocks.0.0.",
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "class_embedding.": "label_emb.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}

_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


def _uniform(config: Mapping[str, Any], key: str, default: Any) -> Any:
    # diffusers accepts a value or one per level; ldmkit has one value for the whole network.
    value = config.get(key, default)
    if isinstance(value, list | tuple):
        if len(set(value)) != 1:
            raise ValueError(f"diffusers {key}={list(value)} varies per level; ldmkit needs one")
        return value[0]
    return value


def _heads(
    config: Mapping[str, Any], channels: list[int], levels: list[int]
) -> tuple[int | None, int | None]:
    """(num_heads, num_head_channels), one None, giving diffusers' heads at every level."""
    heads = config.get("attention_head_dim", 8)  # the number of heads (see module docstring)
    if not isinstance(heads, list | tuple):
        return heads, None
    per_level = list(heads)
    if len(set(per_level[i] for i in levels)) == 1:
        return per_level[levels[0]], None
    widths = {channels[i] // per_level[i] for i in levels}
    if len(widths) != 1 or any(channels[i] % per_level[i] for i in levels):
        raise ValueError(
            f"diffusers heads {per_level} over channels {channels} give neither a fixed head "
            "count nor a fixed head width; ldmkit's UNet needs one of the two"
        )
    return None, widths.pop()


# UNet2DModel (no cross-attention; diffusers' LDMPipeline): its blocks and the options whose
# other values ldmkit's UNet does not implement.
_ATTN_DOWN, _ATTN_UP = "AttnDownBlock2D", "AttnUpBlock2D"
_REQUIRED_2D: dict[str, Any] = {
    "center_input_sample": False,
    "time_embedding_type": "positional",
    "time_embedding_dim": None,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "mid_block_type": "UNetMidBlock2D",
    "mid_block_scale_factor": 1,
    "downsample_padding": 1,
    "downsample_type": "conv",
    "upsample_type": "conv",
    "act_fn": "silu",
    "norm_eps": 1e-5,
    "add_attention": True,
    "class_embed_type": None,
    "num_class_embeds": None,
}


def is_unet_2d(config: Mapping[str, Any]) -> bool:
    """Whether `config` is a UNet2DModel's (plain attention blocks, no cross-attention)."""
    blocks = [*config.get("down_block_types", ()), *config.get("up_block_types", ())]
    return config.get("_class_name") == "UNet2DModel" or any(
        b in (_ATTN_DOWN, _ATTN_UP) for b in blocks
    )


def unet_2d_config_from_diffusers(config: Mapping[str, Any]) -> UNetConfig:
    """Translate a diffusers UNet2DModel config dict into a UNetConfig with plain attention
    blocks (`use_spatial_transformer=False`); `attention_head_dim` is there the head width."""
    for key, required in _REQUIRED_2D.items():
        if config.get(key, required) != required:
            raise ValueError(
                f"diffusers UNet2DModel {key}={config[key]!r} is not supported by ldmkit's UNet "
                f"(needs {required!r})"
            )
    if config.get("attn_norm_num_groups") not in (None, config.get("norm_num_groups", 32)):
        raise ValueError("diffusers attn_norm_num_groups differs from norm_num_groups")
    channels = list(config["block_out_channels"])
    down, up = list(config["down_block_types"]), list(config["up_block_types"])
    if any(t not in (_ATTN_DOWN, _PLAIN_DOWN) for t in down) or any(
        t not in (_ATTN_UP, _PLAIN_UP) for t in up
    ):
        raise ValueError(f"UNet2DModel block types {down} / {up} unsupported")
    levels = len(channels)
    attention = [i for i, t in enumerate(down) if t == _ATTN_DOWN]
    if sorted(levels - 1 - i for i, t in enumerate(up) if t == _ATTN_UP) != attention:
        raise ValueError(f"up_block_types {up} must mirror down_block_types {down}")
    head_width = config.get("attention_head_dim")
    ch = channels[0]
    return UNetConfig(
        in_channels=config.get("in_channels", 3),
        out_channels=config.get("out_channels", 3),
        model_channels=ch,
        channel_mult=tuple(c // ch for c in channels),
        num_res_blocks=_uniform(config, "layers_per_block", 2),
        attention_resolutions=tuple(2**i for i in attention),
        num_heads=None if head_width else 1,
        num_head_channels=head_width or None,
        use_spatial_transformer=False,
        use_scale_shift_norm=config.get("resnet_time_scale_shift", "default") == "scale_shift",
        dropout=config.get("dropout", 0.0),
        norm_groups=config.get("norm_num_groups", 32),
    )


def unet_config_from_diffusers(config: Mapping[str, Any]) -> UNetConfig:
    """Translate a diffusers UNet2DConditionModel (or UNet2DModel) config dict into a
    UNetConfig."""
    if is_unet_2d(config):
        return unet_2d_config_from_diffusers(config)
    for key, required in _REQUIRED.items():
        if config.get(key, required) != required:
            raise ValueError(
                f"diffusers {key}={config[key]!r} is not supported by ldmkit's UNet "
                f"(needs {required!r})"
            )
    only_cross = config.get("only_cross_attention", False)
    if only_cross is True and config.get("mid_block_only_cross_attention") is None:
        raise ValueError(
            "diffusers only_cross_attention=True makes the middle block cross-attention only too, "
            "which ldmkit's UNet does not implement (give one flag per level)"
        )
    if config.get("mid_block_only_cross_attention"):
        raise ValueError("diffusers mid_block_only_cross_attention is not supported")
    channels = list(config["block_out_channels"])
    ch = channels[0]
    if any(c % ch for c in channels):
        raise ValueError(f"block_out_channels {channels} are not multiples of the first entry")
    levels = len(channels)
    down = list(config["down_block_types"])
    up = list(config["up_block_types"])
    if any(t not in (_CROSS_DOWN, _PLAIN_DOWN) for t in down) or any(
        t not in (_CROSS_UP, _PLAIN_UP) for t in up
    ):
        raise ValueError(
            f"block types {down} / {up} unsupported; ldmkit maps {_CROSS_DOWN}, {_PLAIN_DOWN}, "
            f"{_CROSS_UP}, {_PLAIN_UP}"
        )
    attention = [i for i, t in enumerate(down) if t == _CROSS_DOWN]
    mirrored = [levels - 1 - i for i, t in enumerate(up) if t == _CROSS_UP]
    if sorted(mirrored) != attention or len(up) != levels or len(down) != levels:
        raise ValueError(
            f"up_block_types {up} must mirror down_block_types {down}: ldmkit puts attention "
            "at the same levels on both paths"
        )
    # The middle block (last level) always has a transformer, as in CompVis.
    num_heads, num_head_channels = _heads(config, channels, sorted({*attention, levels - 1}))
    shift = config.get("resnet_time_scale_shift", "default")
    if shift not in ("default", "scale_shift"):
        raise ValueError(f"resnet_time_scale_shift={shift!r} unsupported; use default/scale_shift")
    return UNetConfig(
        in_channels=config.get("in_channels", 4),
        out_channels=config.get("out_channels", 4),
        model_channels=ch,
        channel_mult=tuple(c // ch for c in channels),
        num_res_blocks=_uniform(config, "layers_per_block", 2),
        attention_resolutions=tuple(2**i for i in attention),
        num_heads=num_heads,
        num_head_channels=num_head_channels,
        transformer_depth=_uniform(config, "transformer_layers_per_block", 1),
        context_dim=_uniform(config, "cross_attention_dim", 1280),
        use_linear_in_transformer=config.get("use_linear_projection", False),
        num_classes=config.get("num_class_embeds"),
        use_scale_shift_norm=shift == "scale_shift",
        dropout=config.get("dropout", 0.0),
        norm_groups=config.get("norm_num_groups", 32),
        only_cross_attention=(
            tuple(only_cross) if isinstance(only_cross, list | tuple) else (only_cross,) * levels
        ),
    )


def unet_key_from_diffusers(key: str, config: UNetConfig) -> str:
    """The ldmkit (CompVis) name of the diffusers UNet2DConditionModel parameter `key`."""
    for old, new in _TOP_LEVEL.items():
        if key.startswith(old):
            return new + key[len(old) :]
    per_level = config.num_res_blocks + 1  # input_blocks / output_blocks entries per level
    levels = len(config.channel_mult)
    if match := re.match(r"^down_blocks\.(\d+)\.(\w+)\.(\d+)\.(.+)$", key):
        i, part, j, tail = int(match[1]), match[2], int(match[3]), match[4]
        # input_blocks: 0 is conv_in, then per level num_res_blocks entries and a downsampler.
        if part == "downsamplers":
            return f"input_blocks.{(i + 1) * per_level}.0.{tail.replace('conv.', 'op.', 1)}"
        return _in_entry(f"input_blocks.{1 + i * per_level + j}", part, tail)
    if match := re.match(r"^up_blocks\.(\d+)\.(\w+)\.(\d+)\.(.+)$", key):
        i, part, j, tail = int(match[1]), match[2], int(match[3]), match[4]
        # output_blocks: per level, deepest first as in diffusers, num_res_blocks + 1 entries,
        # the last ending in [transformer,] upsampler.
        if part == "upsamplers":
            slot = 2 if 2 ** (levels - 1 - i) in config.attention_resolutions else 1
            return f"output_blocks.{i * per_level + config.num_res_blocks}.{slot}.{tail}"
        return _in_entry(f"output_blocks.{i * per_level + j}", part, tail)
    if match := re.match(r"^mid_block\.(resnets|attentions)\.(\d+)\.(.+)$", key):
        part, j, tail = match[1], int(match[2]), match[3]
        # middle_block: 0 = ResBlock, 1 = transformer, 2 = ResBlock.
        if part == "attentions":
            return f"middle_block.1.{tail}"
        return f"middle_block.{2 * j}.{_resnet_tail(tail)}"
    raise ValueError(f"unexpected diffusers UNet key {key!r}")


def unet_key_to_diffusers(key: str, config: UNetConfig) -> str:
    """The diffusers UNet2DConditionModel name of ldmkit's parameter (or layer) `key`: the
    inverse of `unet_key_from_diffusers` for UNets with transformer attention."""
    for new, old in _TOP_LEVEL.items():
        if key.startswith(old):
            return new + key[len(old) :]
    per_level = config.num_res_blocks + 1
    levels = len(config.channel_mult)
    if match := re.match(r"^input_blocks\.(\d+)\.(\d+)\.(.+)$", key):
        n, slot, tail = int(match[1]), int(match[2]), match[3]
        if n % per_level == 0:  # a downsampler closes each level
            return (
                f"down_blocks.{n // per_level - 1}.downsamplers.0.{tail.replace('op.', 'conv.', 1)}"
            )
        i, j = divmod(n - 1, per_level)
        return _diffusers_entry(f"down_blocks.{i}", slot, j, tail)
    if match := re.match(r"^output_blocks\.(\d+)\.(\d+)\.(.+)$", key):
        n, slot, tail = int(match[1]), int(match[2]), match[3]
        i, j = divmod(n, per_level)
        attends = 2 ** (levels - 1 - i) in config.attention_resolutions
        if slot == 2 or (slot == 1 and not attends):
            return f"up_blocks.{i}.upsamplers.0.{tail}"
        return _diffusers_entry(f"up_blocks.{i}", slot, j, tail)
    if match := re.match(r"^middle_block\.(\d)\.(.+)$", key):
        slot, tail = int(match[1]), match[2]
        if slot == 1:
            return f"mid_block.attentions.0.{tail}"
        return f"mid_block.resnets.{slot // 2}.{_resnet_tail_to_diffusers(tail)}"
    raise ValueError(f"unexpected ldmkit UNet key {key!r}")


def _diffusers_entry(block: str, slot: int, j: int, tail: str) -> str:
    if slot == 0:
        return f"{block}.resnets.{j}.{_resnet_tail_to_diffusers(tail)}"
    return f"{block}.attentions.{j}.{tail}"


def _resnet_tail_to_diffusers(tail: str) -> str:
    for new, old in _RESNET.items():
        if tail == old or tail.startswith(old + "."):
            return new + tail[len(old) :]
    raise ValueError(f"unexpected ResBlock parameter {tail!r}")


def _in_entry(prefix: str, part: str, tail: str) -> str:
    # Inside one input/output entry: 0 = ResBlock, 1 = transformer (diffusers `attentions`).
    if part == "resnets":
        return f"{prefix}.0.{_resnet_tail(tail)}"
    if part == "attentions":
        return f"{prefix}.1.{tail}"
    raise ValueError(f"unexpected diffusers UNet block part {part!r} in {prefix}")


def _resnet_tail(tail: str) -> str:
    # `norm1.weight` -> `in_layers.0.weight`: diffusers' ResnetBlock2D names -> CompVis ResBlock.
    layer, _, rest = tail.partition(".")
    if layer not in _RESNET:
        raise ValueError(f"unexpected diffusers ResnetBlock2D parameter {tail!r}")
    return f"{_RESNET[layer]}.{rest}"


def unet_state_from_diffusers(
    state: Mapping[str, torch.Tensor], config: UNetConfig
) -> dict[str, torch.Tensor]:
    """Rename a diffusers UNet2DConditionModel (or UNet2DModel) state dict into ldmkit's
    (CompVis) names; a UNet2DModel's attention q, k, v are fused into `qkv`."""
    renamed = {unet_key_from_diffusers(key, config): value for key, value in state.items()}
    return renamed if config.use_spatial_transformer else _fused_attention(renamed, config)


def _fused_attention(state: dict[str, torch.Tensor], config: UNetConfig) -> dict[str, torch.Tensor]:
    """A UNet2DModel's attention (`group_norm`, linear `to_q`, `to_k`, `to_v`, `to_out.0`) as
    ldmkit's `AttentionBlock` (`norm`, a Conv1d `qkv` with each head's [q, k, v] in turn,
    guided-diffusion's legacy order, and a Conv1d `proj_out`)."""
    out: dict[str, torch.Tensor] = {}
    blocks = {key.rsplit(".to_q.", 1)[0] for key in state if ".to_q." in key}
    for key, value in state.items():
        block = next((b for b in blocks if key.startswith(b + ".")), None)
        if block is None:
            out[key] = value
            continue
        tail = key[len(block) + 1 :]
        if tail.startswith("group_norm."):
            out[f"{block}.norm.{tail.split('.')[-1]}"] = value
        elif tail.startswith("to_out.0."):
            kind = tail.split(".")[-1]
            out[f"{block}.proj_out.{kind}"] = value[..., None] if kind == "weight" else value
    for block in blocks:
        for kind in ("weight", "bias"):
            q, k, v = (state[f"{block}.to_{p}.{kind}"] for p in "qkv")
            heads, _ = config.heads_at(q.shape[0])
            per_head = [t.reshape(heads, -1, *t.shape[1:]) for t in (q, k, v)]
            fused = torch.cat(per_head, dim=1).reshape(3 * q.shape[0], *q.shape[1:])
            out[f"{block}.qkv.{kind}"] = fused[..., None] if kind == "weight" else fused
    return out


def unet_from_diffusers(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> UNet:
    """Build an ldmkit UNet holding a diffusers UNet2DConditionModel's weights (strictly)."""
    unet_config = unet_config_from_diffusers(config)
    mapped = unet_state_from_diffusers(state, unet_config)
    model = UNet(unet_config)
    load_state(model, mapped, Path("diffusers weights"))
    return model.eval()
