"""diffusers `AutoencoderKL` (and `VQModel`) weights and config -> ldmkit's autoencoder.

ldmkit keeps the original LDM parameter names (`encoder.down.0.block.0.conv1`, `mid.attn_1.q`,
...); diffusers renames them (`down_blocks.0.resnets.0`, `mid_block.attentions.0.to_q`) and
stores the decoder's levels in application order and attention projections as linear layers.
"""

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ldmkit.autoencoder import Autoencoder, AutoencoderConfig
from ldmkit.checkpoint import load_state

_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
    # Names used by diffusers before 0.14.
    "query": "q",
    "key": "k",
    "value": "v",
    "proj_attn": "proj_out",
}


def autoencoder_config_from_diffusers(config: Mapping[str, Any]) -> AutoencoderConfig:
    """Translate a diffusers AutoencoderKL (or VQModel) config dict into an AutoencoderConfig."""
    vq = config.get("_class_name") == "VQModel" or "num_vq_embeddings" in config
    if vq and config.get("vq_embed_dim") not in (None, config.get("latent_channels", 3)):
        raise ValueError("a VQModel whose vq_embed_dim differs from its latent_channels")
    if vq and config.get("norm_type", "group") != "group":
        raise ValueError(f"a VQModel with norm_type {config.get('norm_type')!r} (ldmkit: group)")
    channels = list(config["block_out_channels"])
    ch = channels[0]
    if any(c % ch for c in channels):
        raise ValueError(f"block_out_channels {channels} are not multiples of the first entry")
    return AutoencoderConfig(
        kind="vq" if vq else "kl",
        codebook_size=int(config.get("num_vq_embeddings", 512)),
        in_channels=config.get("in_channels", 3),
        out_channels=config.get("out_channels", 3),
        model_channels=ch,
        channel_mult=tuple(c // ch for c in channels),
        num_res_blocks=config.get("layers_per_block", 1),
        z_channels=config.get("latent_channels", 3 if vq else 4),
        norm_groups=config.get("norm_num_groups", 32),
        mid_attention=config.get("mid_block_add_attention", True),
    )


def autoencoder_key_from_diffusers(key: str, levels: int) -> str:
    """The ldmkit (CompVis) name of the diffusers autoencoder parameter `key` (`levels` deep)."""
    part, _, rest = key.partition(".")
    if part in ("quant_conv", "post_quant_conv"):
        return key
    rest = rest.replace("conv_norm_out", "norm_out")
    rest = re.sub(r"^mid_block\.resnets\.0\.", "mid.block_1.", rest)
    rest = re.sub(r"^mid_block\.resnets\.1\.", "mid.block_2.", rest)
    match = re.match(r"^mid_block\.attentions\.0\.(.+)\.(weight|bias)$", rest)
    if match:
        return f"{part}.mid.attn_1.{_ATTENTION[match.group(1)]}.{match.group(2)}"
    match = re.match(r"^(down|up)_blocks\.(\d+)\.(.+)$", rest)
    if match:
        kind, index, tail = match.group(1), int(match.group(2)), match.group(3)
        level = index if kind == "down" else levels - 1 - index  # diffusers: application order
        tail = re.sub(r"^resnets\.(\d+)\.", r"block.\1.", tail)
        tail = re.sub(r"^(down|up)samplers\.0\.", r"\1sample.", tail)
        rest = f"{kind}.{level}.{tail}"
    rest = rest.replace(".conv_shortcut.", ".nin_shortcut.")
    return f"{part}.{rest}"


def autoencoder_state_from_diffusers(
    state: Mapping[str, torch.Tensor], config: AutoencoderConfig
) -> dict[str, torch.Tensor]:
    """Rename (and reshape linear attention weights to 1x1 convs) a diffusers state dict."""
    levels = len(config.channel_mult)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = autoencoder_key_from_diffusers(key, levels)
        if re.search(r"mid\.attn_1\.(q|k|v|proj_out)\.weight$", new) and value.ndim == 2:
            value = value[:, :, None, None]
        out[new] = value
    return out


def autoencoder_from_diffusers(
    state: Mapping[str, torch.Tensor], config: Mapping[str, Any]
) -> Autoencoder:
    """Build an ldmkit Autoencoder holding a diffusers AutoencoderKL's weights (strictly)."""
    ae_config = autoencoder_config_from_diffusers(config)
    mapped = autoencoder_state_from_diffusers(state, ae_config)
    model = Autoencoder(ae_config)
    mapped["latent_shift"] = torch.tensor(float(config.get("shift_factor") or 0.0))
    mapped["latent_scale"] = torch.tensor(float(config.get("scaling_factor") or 1.0))
    if ae_config.kind == "vq":  # VQ training's dead-code counts, which diffusers does not keep
        mapped.setdefault("quantize.usage", model.state_dict()["quantize.usage"])
    load_state(model, mapped, Path("diffusers weights"))
    return model.eval()
