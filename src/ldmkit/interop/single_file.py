"""A Stable Diffusion 1.x single-file checkpoint (`.safetensors` or `.ckpt`) as an ldmkit
`LatentDiffusion`, read from the file alone, offline.

The file holds the CompVis modules under their original names, which ldmkit keeps:
`model.diffusion_model.*` (the UNet), `first_stage_model.*` (the KL autoencoder) and
`cond_stage_model.transformer.*` (CLIP ViT-L/14's text transformer), plus the schedule's
`betas`. The architecture is read from the weights' names and shapes (widths, levels, blocks,
attention levels, context width); what the weights cannot say comes from the family's rules
(`sd_families.FAMILIES`: SD 1.x uses 8 heads in every transformer, a latent scale of
0.18215, epsilon prediction). CLIP's tokenizer comes from the vocabulary ldmkit ships
(`conditioning.clip_vocab`).
A `.ckpt` is read only through `torch.load(weights_only=True)`: a pickle with code is refused.
"""

import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ldmkit.autoencoder import Autoencoder, AutoencoderConfig
from ldmkit.checkpoint import CheckpointError, load_state
from ldmkit.conditioning import ClipCondition, ClipTextConfig, ClipTextEncoder
from ldmkit.conditioning.clip_vocab import EOS, VOCAB_SIZE, clip_tokenizer
from ldmkit.diffusion import (
    DiffusionLossConfig,
)
from ldmkit.interop.cast_read import read_cast
from ldmkit.interop.compvis import load_compvis, zoo_config_path
from ldmkit.interop.concat_inputs import concat_conditioners
from ldmkit.interop.keys import indices, part
from ldmkit.interop.openclip import openclip_to_hf
from ldmkit.interop.sd_families import (
    CLIP_PREFIXES,
    FIRST_STAGE,
    OPENCLIP,
    UNET,
    Family,
    detect_family,
    family_from_original_config,
    file_kind,
)
from ldmkit.interop.stored_schedule import schedule_from_state
from ldmkit.pipeline import DiffusionConfig, LatentDiffusion
from ldmkit.precision import DTYPES, check_precision
from ldmkit.unet import UNet, UNetConfig

M = TypeVar("M", bound=torch.nn.Module)

SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth")
OPENCLIP_H_LAYERS = 24  # SD 2.x's text tower, OpenCLIP ViT-H-14


def is_single_file(path: Path) -> bool:
    """Whether `path` is a checkpoint file ldmkit may read as one (by its suffix)."""
    return Path(path).is_file() and Path(path).suffix in SUFFIXES


def read_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(the tensors, the plain values beside them such as `global_step`) of a `.safetensors`
    file, or of a `.ckpt` read with weights_only (its "state_dict" entry when it has one);
    anything else is refused."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path)), {}
        zipped = zipfile.is_zipfile(path)  # torch's own format; mmap needs it
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
    except (SafetensorError, OSError, RuntimeError) as error:
        raise CheckpointError(f"{path} is not a readable checkpoint: {error}") from error
    except Exception as error:  # the unpickler refuses code with its own error types
        raise CheckpointError(
            f"{path} holds more than tensors (code or objects) and is refused: it is read only "
            "with torch.load(weights_only=True); convert it to .safetensors where it came from"
        ) from error
    state = loaded.get("state_dict", loaded) if isinstance(loaded, Mapping) else None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} holds a {type(loaded).__name__}, not a state dict")
    info = {k: v for k, v in loaded.items() if isinstance(v, int | float | str)}
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}, info


def is_compvis_zoo(state: Mapping[str, torch.Tensor]) -> bool:
    """A UNet under CompVis names without Stable Diffusion's CLIP or OpenCLIP text encoder."""
    clip_keys = [f"{prefix}embeddings.token_embedding.weight" for prefix in CLIP_PREFIXES]
    has_clip = any(key in state for key in [*clip_keys, f"{OPENCLIP}token_embedding.weight"])
    return f"{UNET}input_blocks.0.0.weight" in state and not has_clip


def unet_config_from_state(unet: Mapping[str, torch.Tensor], family: Family) -> UNetConfig:
    """The UNet's architecture from its CompVis weights: widths and levels from the block
    shapes, attention levels from where transformers stand, heads from the family."""
    first = unet["input_blocks.0.0.weight"]  # (model_channels, in_channels, 3, 3)
    model_channels = int(first.shape[0])
    level, mults, blocks, attention = 0, [0], [0], set()
    depth = linear = None
    cross_only: dict[int, bool] = {}
    for i in indices(unet, r"input_blocks\.(\d+)\.")[1:]:
        if f"input_blocks.{i}.0.op.weight" in unet:  # a downsampling convolution
            level += 1
            mults.append(0)
            blocks.append(0)
            continue
        width = int(unet[f"input_blocks.{i}.0.out_layers.3.weight"].shape[0])
        mults[level], blocks[level] = width // model_channels, blocks[level] + 1
        if f"input_blocks.{i}.1.proj_in.weight" in unet:
            attention.add(2**level)
            depth = len(indices(unet, rf"input_blocks\.{i}\.1\.transformer_blocks\.(\d+)\."))
            linear = unet[f"input_blocks.{i}.1.proj_in.weight"].ndim == 2
            # attn1 reading the context (k: inner x context width) instead of the tokens (the
            # x4 upscaler's `disable_self_attentions`).
            first_block = f"input_blocks.{i}.1.transformer_blocks.0."
            keys = unet[f"{first_block}attn1.to_k.weight"]
            queries = unet[f"{first_block}attn1.to_q.weight"]
            cross_only[level] = keys.shape[1] != queries.shape[1]
    if len(set(blocks)) != 1:
        raise CheckpointError(f"the UNet has {blocks} residual blocks per level; expected equal")
    context = unet.get("middle_block.1.transformer_blocks.0.attn2.to_k.weight")
    label_emb = unet.get("label_emb.weight")  # the x4 upscaler's noise levels
    emb = unet["input_blocks.1.0.emb_layers.1.weight"]
    return UNetConfig(
        in_channels=int(first.shape[1]),
        out_channels=int(unet["out.2.weight"].shape[0]),
        model_channels=model_channels,
        channel_mult=tuple(mults),
        num_res_blocks=blocks[0],
        attention_resolutions=tuple(sorted(attention)),
        num_heads=family.num_heads,
        num_head_channels=family.num_head_channels,
        transformer_depth=depth or 1,
        context_dim=None if context is None else int(context.shape[1]),
        use_linear_in_transformer=bool(linear),
        use_scale_shift_norm=int(emb.shape[0]) == 2 * int(mults[0] * model_channels),
        num_classes=None if label_emb is None else int(label_emb.shape[0]),
        only_cross_attention=(
            family.only_cross_attention
            if family.only_cross_attention is not None
            else tuple(cross_only.get(i, False) for i in range(len(mults)))
        ),
    )


def autoencoder_config_from_state(ae: Mapping[str, torch.Tensor]) -> AutoencoderConfig:
    """The KL autoencoder's architecture from its CompVis weights."""
    width = int(ae["encoder.conv_in.weight"].shape[0])
    levels = indices(ae, r"encoder\.down\.(\d+)\.")
    z = int(ae["decoder.conv_in.weight"].shape[1])
    if int(ae["quant_conv.weight"].shape[0]) != 2 * z:
        raise CheckpointError("the first stage is not a KL autoencoder (VQ is not read yet)")
    return AutoencoderConfig(
        kind="kl",
        in_channels=int(ae["encoder.conv_in.weight"].shape[1]),
        out_channels=int(ae["decoder.conv_out.weight"].shape[0]),
        model_channels=width,
        channel_mult=tuple(
            int(ae[f"encoder.down.{i}.block.0.conv2.weight"].shape[0]) // width for i in levels
        ),
        num_res_blocks=len(indices(ae, r"encoder\.down\.0\.block\.(\d+)\.")),
        attn_factors=tuple(2**i for i in levels if f"encoder.down.{i}.attn.0.q.weight" in ae),
        mid_attention="encoder.mid.attn_1.q.weight" in ae,
        z_channels=z,
    )


def clip_from_state(state: Mapping[str, torch.Tensor], path: Path) -> ClipTextEncoder:
    """CLIP's text transformer from `cond_stage_model.transformer.*`, its shape read from the
    weights (64-wide heads, quick-GELU, as CLIP's), with the shipped tokenizer."""
    from transformers import CLIPTextConfig, CLIPTextModel

    openclip = f"{OPENCLIP}token_embedding.weight" in state
    if openclip:
        weights = openclip_to_hf(part(state, OPENCLIP))
    else:
        prefix = next(p for p in CLIP_PREFIXES if f"{p}embeddings.token_embedding.weight" in state)
        weights = part(state, prefix)
    vocab, width = weights["embeddings.token_embedding.weight"].shape
    if vocab != VOCAB_SIZE:
        raise CheckpointError(f"{path}: a CLIP with {vocab} tokens, not CLIP's {VOCAB_SIZE}")
    config = CLIPTextConfig(
        vocab_size=int(vocab),
        hidden_size=int(width),
        intermediate_size=int(weights["encoder.layers.0.mlp.fc1.weight"].shape[0]),
        num_hidden_layers=len(indices(weights, r"encoder\.layers\.(\d+)\.")),
        num_attention_heads=max(1, int(width) // 64),
        max_position_embeddings=int(weights["embeddings.position_embedding.weight"].shape[0]),
        hidden_act="gelu" if openclip else "quick_gelu",  # OpenCLIP ViT-H: exact GELU
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=0 if openclip else 49407,
    )
    with torch.device("meta"):  # the file's tensors become its own: no second copy
        model = CLIPTextModel(config).eval()
    # The model's own names: under text_model. in some transformers versions, bare in others.
    nested = any(key.startswith("text_model.") for key in model.state_dict())
    weights = {
        ("text_model." if nested else "") + k: v
        for k, v in weights.items()
        if not k.endswith("position_ids")
    }
    _load_clip(model, weights, path)
    # SD 2.x reads OpenCLIP's penultimate layer and pads prompts with "!" (id 0); a ViT-H tower
    # stored without its unused last block (23 of 24, as diffusers keeps it) is read whole.
    trimmed = openclip and config.num_hidden_layers == OPENCLIP_H_LAYERS - 1
    layer = "penultimate" if openclip and not trimmed else "last"
    tokenizer = clip_tokenizer(pad_token="!" if openclip else EOS)
    return ClipTextEncoder(ClipTextConfig(str(path), layer=layer), model.float(), tokenizer)


def _positions(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """{name: 0, 1, ... along the positions} for each of the model's position-id buffers, which
    a file may leave out or store as floats, and which a model built on the meta device lacks."""
    return {
        name: torch.arange(buffer.shape[-1]).expand(buffer.shape)
        for name, buffer in model.named_buffers()
        if name.endswith("position_ids")
    }


def _load_clip(model: torch.nn.Module, weights: dict[str, torch.Tensor], path: Path) -> None:
    """`weights` (position ids left out) as the meta-built CLIP `model`'s own tensors, and
    its position ids made, whether its state dict lists them (persistent) or not."""
    positions = _positions(model)
    listed = model.state_dict()
    given = {k: v for k, v in positions.items() if k in listed}
    load_state(model, {**given, **weights}, path, assign=True)
    for name, value in positions.items():
        owner, _, leaf = name.rpartition(".")
        model.get_submodule(owner).register_buffer(leaf, value, persistent=name in listed)
    unset = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if unset:
        raise CheckpointError(f"{path}: the text encoder's {unset[:5]} are not in the file")


def _assigned(
    build: Callable[[], M],
    state: dict[str, torch.Tensor],
    path: Path,
    dtype: torch.dtype = torch.float32,
) -> M:
    """The module `build` makes, built on the meta device and given the file's tensors as its
    own (no second copy of the weights in memory), in `dtype`."""
    with torch.device("meta"):
        module = build()
    load_state(module, state, path, assign=True)
    return module.to(dtype)


def _held_in(
    weights: dict[str, torch.Tensor],
    state: Mapping[str, torch.Tensor],
    path: Path,
    dtype: torch.dtype,
) -> dict[str, torch.Tensor]:
    """`weights` (tensors of `state`, under other names) cast to `dtype`; from a .safetensors
    file read afresh through `read_cast`, so the float32 pages are never mapped in."""
    if dtype == torch.float32:
        return weights
    if path.suffix != ".safetensors":  # a .ckpt's tensors are cast from its mapping
        return {k: v.to(dtype) if v.is_floating_point() else v for k, v in weights.items()}
    names = {id(tensor): key for key, tensor in state.items()}
    keys = {k: names[id(v)] for k, v in weights.items()}
    read = read_cast(path, keys.values(), dtype)
    return {k: read[key] for k, key in keys.items()}


def ema_unet_state(state: Mapping[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """The UNet's EMA weights a CompVis training stored (`model_ema.` + the parameter's name
    under `diffusion_model.` with its dots removed), under the UNet's own names."""
    unet = part(state, UNET)
    ema = {k: state.get("model_ema.diffusion_model" + k.replace(".", "")) for k in unet}
    missing = [k for k, v in ema.items() if v is None and unet[k].is_floating_point()]
    if len(missing) == len(ema):
        raise CheckpointError(f"{path} holds no EMA weights (model_ema.*); leave out --ema")
    if missing:
        raise CheckpointError(
            f"{path}: the EMA weights lack {len(missing)} UNet parameters (e.g. {missing[0]})"
        )
    return {k: v if v is not None else unet[k] for k, v in ema.items()}


def load_single_file(
    path: Path,
    device: str | torch.device = "cpu",
    ema: bool = False,
    prediction: str | None = None,
    original_config: Path | None = None,
    precision: str = "fp32",
) -> LatentDiffusion:
    """The Stable Diffusion 1.x or 2.x checkpoint file `path` as a LatentDiffusion; `ema` takes
    the UNet's EMA weights where the file has them; `prediction` (eps or v) says what a 2.x
    file predicts; `original_config` (the model's original YAML) overrides the family's rules;
    `precision` (bf16 / fp16) holds the UNet's weights in half precision, read straight into
    it (`LatentDiffusion.hold_weights_in`, without the float32 weights in memory first)."""
    path = Path(path)
    check_precision(precision)
    state, info = read_state(path)
    if is_compvis_zoo(state):
        if prediction is not None:
            raise CheckpointError(f"{path}: a CompVis zoo file's config says what it predicts")
        config_path = zoo_config_path(path, original_config)
        ema_state = ema_unet_state(state, path) if ema else None
        model = load_compvis(path, state, config_path, ema_state)
        model.hold_weights_in(precision)
        return model.to(device).eval()
    if original_config is not None:
        if prediction is not None:
            raise CheckpointError("give --config or --prediction, not both")
        file_kind(state, path)  # the keys must still be a file ldmkit reads
        family = family_from_original_config(original_config)
    else:
        family = detect_family(state, path, info, prediction)
    unet_state, ae_state = part(state, UNET), part(state, FIRST_STAGE)
    # "Full" files keep the first stage's training loss (LPIPS, discriminator): not a weight.
    ae_state = {k: v for k, v in ae_state.items() if not k.startswith("loss.")}
    if ema:
        unet_state = ema_unet_state(state, path)
    try:
        unet = unet_config_from_state(unet_state, family)
        ae_config = autoencoder_config_from_state(ae_state)
        ae_state = {
            **ae_state,
            "latent_shift": torch.tensor(0.0),
            "latent_scale": torch.tensor(family.latent_scale),
        }
        autoencoder = _assigned(lambda: Autoencoder(ae_config), ae_state, path)
        dtype = DTYPES[precision]
        unet_state = _held_in(unet_state, state, path, dtype)
        denoiser = _assigned(lambda: UNet(unet), unet_state, path, dtype)
        clip = clip_from_state(state, path)
        config = DiffusionConfig(
            unet=unet,
            schedule=schedule_from_state(state),
            loss=DiffusionLossConfig(prediction=family.prediction),  # type: ignore[arg-type]
            latent_size=family.latent_size,
            conditioners=(
                ClipCondition(encoder=clip.config),  # its layer, penultimate for 2.x
                *concat_conditioners(
                    unet.in_channels,
                    ae_config.z_channels,
                    str(path),
                    unet.num_classes,
                    ae_config.factor,
                    max_noise_level=family.max_noise_level,
                    noise_betas=family.noise_betas,
                ),
            ),
        )
        model = LatentDiffusion(config, autoencoder.eval(), {"clip": clip}, unet=denoiser)
    except CheckpointError:
        raise
    except (KeyError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path} ({family.name}): {error}") from error
    return model.to(device).eval()
