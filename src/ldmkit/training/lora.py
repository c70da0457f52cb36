"""LoRA fine-tuning: `peft` adapters on the UNet's attention projections and, optionally, on
the text encoder; the base weights stay frozen.

`Adapters` gathers the adapter layers in one module, so the optimiser, the EMA and the run's
checkpoints hold the adapters alone (a few MB, not the base model), and turns them into
`LoraPair`s named by the layers they adapt (the UNet's own names; `training` knows no other
tool's). The finished adapters are written by `save_lora` in ldmkit's own key names
(`unet.<layer>.lora_down.weight`, `.lora_up.weight`, `.alpha`); `interop/lora.py` reads them and
writes the names other tools load.
"""

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from ldmkit.nn.lora import LoraPair
from ldmkit.pipeline import LatentDiffusion
from ldmkit.training.ema import EMA
from ldmkit.training.lora_settings import LoraSettings

# Module-name patterns (peft's `target_modules` regex, matched against full names).
_ATTENTION = r"transformer_blocks\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0)"
_TRANSFORMER = rf"(proj_in|proj_out|{_ATTENTION}|transformer_blocks\.\d+\.ff\.net\.(0\.proj|2))"
_CONVOLUTIONS = r"(in_layers\.2|out_layers\.3|skip_connection|op|\d+\.conv)"
UNET_TARGETS = {
    "attention": rf".*\.{_ATTENTION}$",
    "transformer": rf".*\.{_TRANSFORMER}$",
    "all": rf".*\.({_TRANSFORMER}|{_CONVOLUTIONS})$",
}
# CLIP's attention projections; the feed-forward linears of ldmkit's own text encoder, whose
# attention is torch's fused MultiheadAttention (it reads out_proj's weight directly, so an
# adapter there would not train).
CLIP_LAYERS = r".*self_attn\.(q_proj|k_proj|v_proj|out_proj)$"
TEXT_LAYERS = r".*\.(linear1|linear2)$"
LORA_FILE = "lora.safetensors"
FORMAT = "ldmkit-lora"


class Adapters(nn.Module):
    """The adapter layers `peft` put into a model's UNet (and text encoder), as one module:
    its parameters are exactly what LoRA training updates."""

    def __init__(self, model: LatentDiffusion, settings: LoraSettings):
        super().__init__()
        from peft import LoraConfig, inject_adapter_in_model

        if not model.unet.config.use_spatial_transformer:
            raise ValueError(
                "LoRA adapts the UNet's transformer attention (to_q, to_k, to_v, to_out); this "
                "UNet has plain attention blocks: fine-tune it whole (lora.rank=0)"
            )
        self.settings = settings
        alpha = settings.alpha or settings.rank  # peft takes a float, though typed int
        parts: dict[str, tuple[nn.Module, str]] = {
            "unet": (model.unet, UNET_TARGETS[settings.targets])
        }
        if settings.text_encoder:
            encoder = model.text_encoder
            if encoder is None:
                raise ValueError("lora.text_encoder: this model has no text encoder")
            pattern = CLIP_LAYERS if model.clip is not None else TEXT_LAYERS
            parts["text_encoder"] = (encoder, pattern)
        self.layers = nn.ModuleDict()
        for part, (network, pattern) in parts.items():
            targets = [  # by full name: a pattern's Identity (a skip without a conv) left out
                name
                for name, layer in network.named_modules()
                if re.fullmatch(pattern, name) and isinstance(layer, nn.Linear | nn.Conv2d)
            ]
            if not targets:
                raise ValueError(f"LoRA found no layer to adapt in the {part}")
            config = LoraConfig(
                r=settings.rank,
                lora_alpha=alpha,  # type: ignore[arg-type]
                lora_dropout=settings.dropout,
                target_modules=targets,
                init_lora_weights=True,  # B = 0: training starts at the base model
            )
            inject_adapter_in_model(config, network)
            for name, layer in network.named_modules():
                if hasattr(layer, "lora_A") and "default" in layer.lora_A:
                    key = f"{part}.{name}"
                    # ModuleDict keys cannot hold dots; the pair's A and B are its children.
                    down, up = layer.lora_A["default"], layer.lora_B["default"]
                    self.layers[key.replace(".", "|")] = nn.ModuleDict({"A": down, "B": up})

    def pairs(self, state: Mapping[str, torch.Tensor] | None = None) -> dict[str, LoraPair]:
        """Each adapted layer's pair ("unet.<layer>" -> down, up, alpha), from `state` (e.g.
        the EMA's averaged adapters) or from the live weights."""
        state = dict(self.state_dict() if state is None else state)
        alpha = float(self.settings.alpha or self.settings.rank)
        out = {}
        for key in self.layers:
            down, up = state[f"layers.{key}.A.weight"], state[f"layers.{key}.B.weight"]
            out[key.replace("|", ".")] = LoraPair(down.detach().cpu(), up.detach().cpu(), alpha)
        return out

    @contextlib.contextmanager
    def averaged(self, ema: EMA) -> Iterator[None]:
        """The EMA's adapter weights in place while inside (e.g. to sample a snapshot)."""
        live = {k: v.detach().clone() for k, v in self.state_dict().items()}
        self.load_state_dict(ema.averaged_state(self))
        try:
            yield
        finally:
            self.load_state_dict(live)


def lora_tensors(pairs: Mapping[str, LoraPair]) -> dict[str, torch.Tensor]:
    """Pairs under ldmkit's key names: `<part>.<layer>.lora_down.weight`, `.lora_up.weight`,
    `.alpha`."""
    tensors = {}
    for name, pair in pairs.items():
        tensors[f"{name}.lora_down.weight"] = pair.down.contiguous()
        tensors[f"{name}.lora_up.weight"] = pair.up.contiguous()
        tensors[f"{name}.alpha"] = torch.tensor(float(pair.alpha or pair.rank))
    return tensors


def save_lora(pairs: Mapping[str, LoraPair], path: Path, about: Mapping[str, object]) -> Path:
    """Write `pairs` in ldmkit's names, with `about` (base model, rank, steps) as metadata."""
    metadata = {"format": FORMAT, "ldmkit": json.dumps(dict(about))}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(lora_tensors(pairs), str(tmp), metadata=metadata)
    tmp.replace(path)
    return path
