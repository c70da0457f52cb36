"""LoRA files: read in the key names of ldmkit, diffusers (peft's `lora_A` / `lora_B`, and the
older `processor.to_q_lora` / `lora_linear_layer`) and kohya (`lora_unet_...`, `lora_te_...`, as
the web UIs load them), written in the latter two, and merged into a loaded model.

A layer's external name is the diffusers name of the UNet layer (`unet_key_to_diffusers`) or
the text encoder's own module name (CLIP's under `text_model.`); kohya's is the same name with
dots as underscores, prefixed `lora_unet_` / `lora_te_`. Written files fold alpha / rank into
`up` where the format has no alpha (diffusers), so every reader gets the same product.
"""

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from ldmkit.interop.diffusers_unet import unet_key_to_diffusers
from ldmkit.interop.model_hash import model_hash
from ldmkit.nn.lora import LoraError, LoraPair, add_deltas, checked_deltas, layer_weight
from ldmkit.pipeline import LatentDiffusion

PARTS = ("unet", "text_encoder")
KOHYA_PREFIX = {"unet": "lora_unet_", "text_encoder": "lora_te_"}
WRITTEN = ("diffusers", "kohya")
SHOWN = 3  # unmatched layers named in an error; the rest counted
# Older diffusers names of the same two matrices.
_OLD_DIFFUSERS = (
    (re.compile(r"\.processor\.(to_q|to_k|to_v)_lora\.(down|up)\.weight$"), r".\1.\2"),
    (re.compile(r"\.processor\.to_out_lora\.(down|up)\.weight$"), r".to_out.0.\1"),
    (re.compile(r"\.lora_linear_layer\.(down|up)\.weight$"), r".\1"),
)


@dataclass(frozen=True)
class AppliedLora:
    """A LoRA merged into a model: what a generated image records of it."""

    file: str
    name: str
    hash: str
    scale: float
    layers: int
    format: str

    def to_dict(self) -> dict[str, object]:
        """As the image's parameters record it."""
        return {"file": self.file, "name": self.name, "hash": self.hash, "scale": self.scale}


def parse_lora_spec(spec: str) -> tuple[Path, float]:
    """`FILE:SCALE` (or `FILE`, scale 1) as a path and a scale; a LoraError saying the form."""
    path, _, tail = spec.rpartition(":")
    if not path:
        return Path(spec), 1.0
    try:
        scale = float(tail)
    except ValueError:
        raise LoraError(f"{spec!r}: give FILE:SCALE, e.g. style.safetensors:0.8") from None
    if not torch.isfinite(torch.tensor(scale)):
        raise LoraError(f"{spec!r}: the scale must be a finite number")
    return Path(path), scale


def read_lora(path: Path) -> tuple[dict[str, LoraPair], str]:
    """The file's pairs by external name ("unet.<diffusers layer>", "text_encoder.<layer>",
    kohya's "lora_unet_<...>") and its format: "ldmkit", "diffusers" or "kohya"."""
    try:
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (OSError, SafetensorError) as error:
        raise LoraError(f"{path}: not a readable .safetensors file ({error})") from None
    if any(key.startswith(tuple(KOHYA_PREFIX.values())) for key in tensors):
        return _pairs(tensors, "lora_down", "lora_up", path), "kohya"
    if any(".lora_A." in key or key.endswith(".lora_A.weight") for key in tensors):
        pairs = _pairs(tensors, "lora_A", "lora_B", path)
        return _with_metadata_alpha(pairs, metadata), "diffusers"
    if any(pattern.search(key) for pattern, _ in _OLD_DIFFUSERS for key in tensors):
        renamed = {_old_name(key): value for key, value in tensors.items()}
        return _pairs(renamed, "down", "up", path), "diffusers"
    if any(key.endswith(".lora_down.weight") for key in tensors):
        return _pairs(tensors, "lora_down", "lora_up", path), "ldmkit"
    shown = ", ".join(sorted(tensors)[:SHOWN])
    raise LoraError(
        f"{path}: not a LoRA ldmkit reads (keys like {shown}); it reads LoRA pairs in ldmkit's, "
        "diffusers' or kohya's names (LoHa, LoKr and other LyCORIS kinds are not read)"
    )


def _old_name(key: str) -> str:
    for pattern, replacement in _OLD_DIFFUSERS:
        if pattern.search(key):
            return pattern.sub(replacement + ".weight", key)
    return key


def _pairs(
    tensors: Mapping[str, torch.Tensor], down: str, up: str, path: Path
) -> dict[str, LoraPair]:
    """Group `<layer>.<down>.weight`, `<layer>.<up>.weight` and `<layer>.alpha` (one pass)."""
    found: dict[str, dict[str, list[str]]] = {}
    for key in tensors:
        for role in (down, up):
            if f".{role}." in key:
                layer = key.rsplit(f".{role}.", 1)[0]
                found.setdefault(layer, {down: [], up: []})[role].append(key)
    pairs = {}
    for layer in sorted(found):
        downs, ups = found[layer][down], found[layer][up]
        if len(downs) != 1 or len(ups) != 1:
            raise LoraError(f"{path}: layer {layer!r} has {len(downs)} {down} and {len(ups)} {up}")
        alpha = tensors.get(f"{layer}.alpha")
        pairs[layer] = LoraPair(
            tensors[downs[0]], tensors[ups[0]], None if alpha is None else float(alpha)
        )
    if not pairs:
        raise LoraError(f"{path}: no LoRA pairs found")
    return pairs


def _with_metadata_alpha(pairs: dict[str, LoraPair], metadata: Mapping[str, str]) -> dict:
    """diffusers' pairs with the alpha its metadata records per part (else alpha = rank)."""
    try:
        recorded = json.loads(metadata.get("lora_adapter_metadata", "{}"))
    except ValueError:
        recorded = {}
    out = {}
    for name, pair in pairs.items():
        alpha = recorded.get(f"{name.split('.', 1)[0]}.lora_alpha")
        out[name] = LoraPair(pair.down, pair.up, float(alpha) if alpha else pair.alpha)
    return out


def _layer_names(model: LatentDiffusion) -> dict[str, dict[str, str]]:
    """Per part, every adaptable layer's external name -> its module name in the model."""
    names: dict[str, dict[str, str]] = {part: {} for part in PARTS}
    config = model.unet.config
    for name in _layers(model.unet, nn.Linear | nn.Conv2d | nn.Conv1d):
        try:
            outside = unet_key_to_diffusers(f"{name}.weight", config).removesuffix(".weight")
        except ValueError:
            outside = name
        names["unet"][outside] = name
    encoder = model.text_encoder
    if encoder is not None:
        clip = model.clip is not None
        for name in _layers(encoder, nn.Linear):
            outside = f"text_model.{name.removeprefix('text_model.')}" if clip else name
            names["text_encoder"][outside] = name
    return names


def _layers(network: nn.Module, kinds: object) -> list[str]:
    """`network`'s layers of `kinds` by name; in a network `peft` adapted, each adapted layer
    by its own name (its `base_layer`), the adapters' own layers left out."""
    found = []
    for name, module in network.named_modules():
        if re.search(r"\.lora_(A|B|dropout|embedding_A|embedding_B|magnitude_vector)\b", name):
            continue
        if isinstance(module, kinds):  # type: ignore[arg-type]
            found.append(name.removesuffix(".base_layer"))
    return found


def model_layers(
    model: LatentDiffusion, pairs: Mapping[str, LoraPair], fmt: str, path: Path
) -> dict[str, dict[str, LoraPair]]:
    """The file's pairs per part ("unet", "text_encoder") under the model's module names; a
    LoraError naming the layers the model does not have."""
    names = _layer_names(model)
    kohya = {
        part: {KOHYA_PREFIX[part] + k.replace(".", "_"): v for k, v in table.items()}
        for part, table in names.items()
    }
    own = {part: set(table.values()) for part, table in names.items()}  # ldmkit's layer names
    found: dict[str, dict[str, LoraPair]] = {part: {} for part in PARTS}
    missing = []
    for external, pair in pairs.items():
        for part in PARTS:
            if fmt == "kohya":
                layer = kohya[part].get(external)
            elif external.startswith(f"{part}."):
                inner = external[len(part) + 1 :]
                layer = names[part].get(inner) if fmt == "diffusers" else inner
                if fmt == "ldmkit" and inner not in own[part]:
                    layer = None
            else:
                layer = None
            if layer is not None:
                found[part][layer] = pair
                break
        else:
            missing.append(external)
    if missing:
        shown = ", ".join(missing[:SHOWN]) + (
            f" (+{len(missing) - SHOWN})" if missing[SHOWN:] else ""
        )
        raise LoraError(
            f"{path}: {len(missing)} of {len(pairs)} adapted layers are not in this model: "
            f"{shown}; is the LoRA made for another model family?"
        )
    return found


Deltas = dict[str, dict[str, torch.Tensor]]  # part -> layer -> the product, as its weight


def _parts(model: LatentDiffusion) -> dict[str, nn.Module]:
    return {"unet": model.unet, "text_encoder": model.text_encoder}  # type: ignore[dict-item]


def prepare_lora(
    model: LatentDiffusion, path: Path, scale: float = 1.0
) -> tuple[Deltas, AppliedLora]:
    """The LoRA at `path` checked whole against `model` (a LoraError naming what does not fit)
    and its products per layer, nothing merged yet; with what an image records of it."""
    pairs, fmt = read_lora(Path(path))
    found = model_layers(model, pairs, fmt, Path(path))
    parts = _parts(model)
    deltas = {part: checked_deltas(parts[part], layers) for part, layers in found.items() if layers}
    applied = AppliedLora(
        str(path), Path(path).stem, model_hash(Path(path)), scale, len(pairs), fmt
    )
    return deltas, applied


def _merge(model: LatentDiffusion, deltas: Deltas, scale: float) -> None:
    parts = _parts(model)
    for part, part_deltas in deltas.items():
        add_deltas(parts[part], part_deltas, scale)
    model.weights_changed()


def apply_lora(model: LatentDiffusion, path: Path, scale: float = 1.0) -> AppliedLora:
    """Merge the LoRA at `path`, times `scale`, into `model`'s weights (checked whole first)."""
    deltas, applied = prepare_lora(model, path, scale)
    _merge(model, deltas, scale)
    return applied


@contextmanager
def loras_merged(
    model: LatentDiffusion, loras: Sequence[tuple[Path, float]]
) -> Iterator[list[AppliedLora]]:
    """The LoRAs (path, scale) merged into `model` inside the block, every one checked before
    any weight changes; after it, each weight they touched is put back bit for bit (a server's
    per-request LoRAs). Holds a copy of the touched weights meanwhile."""
    prepared = [prepare_lora(model, path, scale) for path, scale in loras]
    parts = _parts(model)
    saved: dict[tuple[str, str], torch.Tensor] = {}
    for deltas, _ in prepared:
        for part, layers in deltas.items():
            for layer in layers:
                if (part, layer) not in saved:
                    saved[part, layer] = layer_weight(parts[part], layer).detach().clone()
    try:
        for deltas, applied in prepared:
            _merge(model, deltas, applied.scale)
        yield [applied for _, applied in prepared]
    finally:
        with torch.no_grad():
            for (part, layer), weight in saved.items():
                layer_weight(parts[part], layer).copy_(weight)
        model.weights_changed()


def apply_loras(model: LatentDiffusion, specs: Iterable[str]) -> list[AppliedLora]:
    """`FILE:SCALE` specs merged in turn (`apply_lora`)."""
    applied = []
    for spec in specs:
        path, scale = parse_lora_spec(spec)
        if not path.is_file():
            raise LoraError(f"{spec!r}: no file {path}")
        applied.append(apply_lora(model, path, scale))
    return applied


def write_lora(model: LatentDiffusion, pairs: Mapping[str, LoraPair], path: Path, fmt: str) -> Path:
    """Write `pairs` (ldmkit names: "unet.<layer>", "text_encoder.<layer>") for `model` in
    `fmt` ("diffusers" or "kohya")."""
    if fmt not in WRITTEN:
        raise ValueError(f"LoRA format {fmt!r}: one of {', '.join(WRITTEN)}")
    outside = {
        part: {v: k for k, v in table.items()} for part, table in _layer_names(model).items()
    }
    tensors: dict[str, torch.Tensor] = {}
    for name, pair in pairs.items():
        part, layer = name.split(".", 1)
        external = outside[part][layer]
        alpha = float(pair.alpha or pair.rank)
        if fmt == "diffusers":
            key = f"{part}.{external}"
            tensors[f"{key}.lora_A.weight"] = pair.down.contiguous()
            tensors[f"{key}.lora_B.weight"] = (pair.up * (alpha / pair.rank)).contiguous()
        else:
            key = KOHYA_PREFIX[part] + external.replace(".", "_")
            tensors[f"{key}.lora_down.weight"] = pair.down.contiguous()
            tensors[f"{key}.lora_up.weight"] = pair.up.contiguous()
            tensors[f"{key}.alpha"] = torch.tensor(alpha)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    tmp.replace(path)
    return path
