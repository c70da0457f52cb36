"""OpenCLIP's text tower (Stable Diffusion 2.x's `cond_stage_model.model.*`) under transformers'
CLIPTextModel names and back: `ln_1` <-> `layer_norm1`, `mlp.c_fc` <-> `mlp.fc1`, ..., and the
fused attention in-projection <-> separate q, k, v (nn.MultiheadAttention stacks them in that
order)."""

import re
from collections.abc import Mapping

import torch

from ldmkit.interop.keys import indices

# OpenCLIP's per-layer names -> transformers'.
_NAMES = {
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
    "attn.out_proj": "self_attn.out_proj",
}
_TOP = {
    "token_embedding.weight": "embeddings.token_embedding.weight",
    "positional_embedding": "embeddings.position_embedding.weight",
    "ln_final.weight": "final_layer_norm.weight",
    "ln_final.bias": "final_layer_norm.bias",
}


_QKV = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")


def openclip_to_hf(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenCLIP's text tower (`transformer.resblocks.N.attn.in_proj_weight`, `ln_1`, `mlp.c_fc`,
    `ln_final`, ...) under transformers' CLIPTextModel names, the fused in-projection split
    into q, k, v (nn.MultiheadAttention stacks them in that order)."""
    out = {hf: weights[openclip] for openclip, hf in _TOP.items()}
    for key, value in weights.items():
        found = re.match(r"transformer\.resblocks\.(\d+)\.(.+)\.(weight|bias)$", key)
        if found is None:
            continue
        layer, name, kind = found.groups()  # in_proj_weight / _bias do not match: split below
        out[f"encoder.layers.{layer}.{_NAMES.get(name, name)}.{kind}"] = value
    for layer in indices(weights, r"transformer\.resblocks\.(\d+)\."):
        for kind in ("weight", "bias"):
            fused = weights[f"transformer.resblocks.{layer}.attn.in_proj_{kind}"]
            for part, chunk in zip("qkv", fused.chunk(3), strict=True):
                out[f"encoder.layers.{layer}.self_attn.{part}_proj.{kind}"] = chunk
    return out


def hf_to_openclip(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers' CLIPTextModel weights (without the `text_model.` prefix) under OpenCLIP's
    names, q, k, v fused into the in-projection: the inverse of `openclip_to_hf`."""
    back = {hf: openclip for openclip, hf in _NAMES.items()}
    out = {openclip: weights[hf] for openclip, hf in _TOP.items()}
    for key, value in weights.items():
        found = re.match(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$", key)
        if found is None or found[2] in _QKV:  # q, k, v: fused below
            continue
        layer, name, kind = found.groups()
        out[f"transformer.resblocks.{layer}.{back.get(name, name)}.{kind}"] = value
    for layer in indices(weights, r"encoder\.layers\.(\d+)\."):
        for kind in ("weight", "bias"):
            parts = [weights[f"encoder.layers.{layer}.self_attn.{p}_proj.{kind}"] for p in "qkv"]
            out[f"transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat(parts)
    return out
