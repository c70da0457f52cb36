"""CompVis model-zoo checkpoints (Rombach et al. 2022's released LDMs): `model.ckpt` with the
`config.yaml` the zoo ships beside it, read offline.

The weights use the names ldmkit keeps (`model.diffusion_model.*`, `first_stage_model.*`); what
they do not record (heads, the attention kind, the first stage's codebook, the conditioning, the
latent scale unless the file stores its `scale_factor` buffer) comes from the YAML, which is
read as data (`yaml.safe_load`), never executed. Families read: unconditional (LSUN, CelebA-HQ,
FFHQ; VQ or KL first stage, plain self-attention blocks), class-conditional ImageNet
(`ClassEmbedder` tokens cross-attended), super-resolution (`bsr_sr`: the low-resolution image
concatenated), inpainting (the encoded known part and the mask concatenated) and text-to-image
(`BERTEmbedder`, its word-piece vocabulary from a `vocab.txt` beside the checkpoint), semantic
synthesis (`SpatialRescaler`) and layout-to-image (`coordinates_bbox`: the same transformer over
box tokens, `conditioning/bbox_tokens.py`; class names from a `labels.txt` beside it, if kept).
"""

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ldmkit.autoencoder import Autoencoder, AutoencoderConfig
from ldmkit.checkpoint import CheckpointError, load_state
from ldmkit.conditioning import (
    BBoxTokensCondition,
    BBoxTokensConditioner,
    BertCondition,
    BertConditioner,
    BertEncoderConfig,
    ClassTokensCondition,
    SpatialCondition,
    SpatialConfig,
)
from ldmkit.diffusion import DiffusionLossConfig, ScheduleConfig
from ldmkit.interop.keys import part
from ldmkit.interop.stored_schedule import COMPVIS_CONVENTIONS, schedule_from_state
from ldmkit.pipeline import DiffusionConfig, LatentDiffusion
from ldmkit.unet import UNetConfig

UNET, FIRST_STAGE, COND_STAGE = "model.diffusion_model.", "first_stage_model.", "cond_stage_model."
BERT = COND_STAGE + "transformer."
ZOO_CONFIG = "config.yaml"  # beside model.ckpt in every zoo zip
LABELS_FILE = "labels.txt"  # a layout model's class names, where the user has them
# The CompVis code's make_beta_schedule names -> ldmkit's kinds ("sqrt_linear" is linear in beta).
BETA_SCHEDULES = {"linear": "linear", "sqrt_linear": "beta_linear", "cosine": "cosine"}
IMAGENET_CLASSES = 1000


def zoo_config_path(path: Path, given: Path | None) -> Path:
    """The YAML for the zoo file `path`: `given`, else the zip layout's config.yaml beside it."""
    if given is not None:
        return Path(given)
    beside = Path(path).parent / ZOO_CONFIG
    if beside.is_file():
        return beside
    raise CheckpointError(
        f"{path}: a CompVis model-zoo file (a UNet without Stable Diffusion's CLIP). Its weights "
        "do not record the heads, the attention kind or the conditioning: pass --config "
        f"CONFIG.yaml, or keep the zoo's {ZOO_CONFIG} beside the checkpoint"
    )


def load_compvis(
    path: Path,
    state: Mapping[str, torch.Tensor],
    config_path: Path,
    ema_state: Mapping[str, torch.Tensor] | None = None,
) -> LatentDiffusion:
    """The zoo model whose weights are `state` (`ema_state`: the UNet's EMA weights instead)
    and whose original config is `config_path`."""
    params = original_params(config_path)
    try:
        unet = unet_config_from_yaml(params["unet_config"]["params"])
        autoencoder_config = autoencoder_config_from_yaml(params["first_stage_config"])
        conditioners = _conditioners(params, state, autoencoder_config, path.parent / "vocab.txt")
        scale = state.get("scale_factor")
        latent_scale = float(scale) if scale is not None else float(params.get("scale_factor", 1))
        config = DiffusionConfig(
            unet=unet,
            schedule=_schedule(params, state),
            loss=DiffusionLossConfig(prediction=params.get("parameterization", "eps")),
            latent_size=int(params.get("image_size", 64)),
            conditioners=conditioners,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{config_path}: not a config ldmkit can read ({error})") from error
    autoencoder = Autoencoder(autoencoder_config)
    first_stage = {k: v for k, v in part(state, FIRST_STAGE).items() if not k.startswith("loss.")}
    first_stage |= {"latent_shift": torch.tensor(0.0), "latent_scale": torch.tensor(latent_scale)}
    if autoencoder_config.kind == "vq":
        first_stage.setdefault("quantize.usage", autoencoder.state_dict()["quantize.usage"])
    load_state(autoencoder, first_stage, path)
    try:
        model = LatentDiffusion(config, autoencoder.eval())
    except (FileNotFoundError, ImportError, ValueError) as error:  # a missing vocabulary
        raise CheckpointError(f"{path}: {error}") from error
    load_state(model.unet, dict(ema_state) if ema_state is not None else part(state, UNET), path)
    for conditioner in model.conditioners:
        if isinstance(conditioner, BertConditioner | BBoxTokensConditioner):
            load_state(conditioner.encoder, bert_state(part(state, BERT)), path)
        elif isinstance(conditioner, torch.nn.Module):
            load_state(conditioner, part(state, COND_STAGE), path)
    return model.eval()


def _schedule(params: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> ScheduleConfig:
    """The file's own `betas` where it stores them, else the YAML's schedule."""
    if "betas" in state:
        return schedule_from_state(state)
    kind = str(params.get("beta_schedule", "linear"))
    if kind not in BETA_SCHEDULES:
        raise CheckpointError(
            f"beta_schedule {kind!r} is not one ldmkit builds ({', '.join(BETA_SCHEDULES)})"
        )
    return ScheduleConfig(
        BETA_SCHEDULES[kind],  # type: ignore[arg-type]
        int(params.get("timesteps", 1000)),
        float(params.get("linear_start", 0.00085)),
        float(params.get("linear_end", 0.012)),
        cosine_s=float(params.get("cosine_s", 0.008)),
        **COMPVIS_CONVENTIONS,
    )


def bert_state(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A CompVis `BERTEmbedder`'s x-transformers weights (`token_emb`, `pos_emb.emb`,
    `attn_layers.layers.K.{0,1}` alternating attention and feed-forward, `norm`) under
    `BertEncoder`'s names; the unused `to_logits` head is left out."""
    out: dict[str, torch.Tensor] = {}
    top = {
        "token_emb.": "embed_tokens.",
        "pos_emb.emb.": "embed_positions.",
        "norm.": "layer_norm.",
    }
    inner = {
        "0": ("self_attn_layer_norm", "final_layer_norm"),
        "1.to_q": ("self_attn.q_proj", None),
        "1.to_k": ("self_attn.k_proj", None),
        "1.to_v": ("self_attn.v_proj", None),
        "1.to_out": ("self_attn.out_proj", None),
        "1.net.0.0": (None, "fc1"),
        "1.net.2": (None, "fc2"),
    }
    for key, value in weights.items():
        if key.startswith("to_logits."):
            continue
        old = next((o for o in top if key.startswith(o)), None)
        if old is not None:
            out[top[old] + key[len(old) :]] = value
            continue
        found = re.match(r"attn_layers\.layers\.(\d+)\.(.+)\.(weight|bias)$", key)
        if found is None or found[2] not in inner:
            raise CheckpointError(f"an unexpected BERTEmbedder weight {key!r}")
        index, name, kind = int(found[1]), found[2], found[3]
        new = inner[name][index % 2]  # even entries attend, odd ones feed forward
        if new is None:
            raise CheckpointError(f"an unexpected BERTEmbedder weight {key!r}")
        out[f"layers.{index // 2}.{new}.{kind}"] = value
    return out


def unet_config_from_yaml(unet: Mapping[str, Any]) -> UNetConfig:
    """The UNetConfig of an `openaimodel.UNetModel` params block (its defaults where absent)."""
    heads, head_channels = unet.get("num_heads", -1), unet.get("num_head_channels", -1)
    context = unet.get("context_dim")
    return UNetConfig(
        in_channels=int(unet["in_channels"]),
        out_channels=int(unet["out_channels"]),
        model_channels=int(unet["model_channels"]),
        channel_mult=tuple(unet.get("channel_mult", (1, 2, 4, 8))),
        num_res_blocks=int(unet["num_res_blocks"]),
        attention_resolutions=tuple(unet["attention_resolutions"]),
        num_heads=None if head_channels != -1 else int(heads),
        num_head_channels=int(head_channels) if head_channels != -1 else None,
        transformer_depth=int(unet.get("transformer_depth", 1)),
        context_dim=int(context) if context is not None else None,
        use_linear_in_transformer=bool(unet.get("use_linear_in_transformer", False)),
        use_spatial_transformer=bool(unet.get("use_spatial_transformer", False)),
        num_classes=unet.get("num_classes"),
        use_scale_shift_norm=bool(unet.get("use_scale_shift_norm", False)),
        resblock_updown=bool(unet.get("resblock_updown", False)),
        dropout=float(unet.get("dropout", 0.0)),
    )


def autoencoder_config_from_yaml(first_stage: Mapping[str, Any]) -> AutoencoderConfig:
    """The AutoencoderConfig of a first_stage_config block (AutoencoderKL or a VQ model)."""
    target = str(first_stage.get("target", ""))
    params = first_stage["params"]
    dd = params["ddconfig"]
    kind = "kl" if target.endswith("AutoencoderKL") else "vq" if "VQ" in target else None
    if kind is None:
        raise CheckpointError(f"first stage {target!r} is neither AutoencoderKL nor a VQ model")
    if int(params.get("embed_dim", dd["z_channels"])) != int(dd["z_channels"]):
        raise CheckpointError("a first stage whose embed_dim differs from z_channels")
    resolution = int(dd.get("resolution", 256))
    return AutoencoderConfig(
        kind=kind,
        in_channels=int(dd.get("in_channels", 3)),
        out_channels=int(dd.get("out_ch", 3)),
        model_channels=int(dd["ch"]),
        channel_mult=tuple(dd["ch_mult"]),
        num_res_blocks=int(dd["num_res_blocks"]),
        attn_factors=tuple(resolution // int(r) for r in dd.get("attn_resolutions", [])),
        z_channels=int(dd["z_channels"]),
        codebook_size=int(params.get("n_embed", 512)),
    )


def _conditioners(
    params: Mapping[str, Any],
    state: Mapping[str, torch.Tensor],
    first_stage: AutoencoderConfig,
    vocab: Path,
) -> tuple:
    stage = params.get("cond_stage_config")
    if stage in (None, "__is_unconditional__"):
        return ()
    target = str(stage.get("target", "")) if isinstance(stage, Mapping) else str(stage)
    # CompVis: without a conditioning_key, concat_mode (default true) means concatenation.
    key = params.get("conditioning_key") or (
        "concat" if params.get("concat_mode", True) else "crossattn"
    )
    in_channels = int(params["unet_config"]["params"]["in_channels"])
    z = first_stage.z_channels
    if key == "concat" and target == "__is_first_stage__" and in_channels == 2 * z + 1:
        # The inpainting model: the first stage's encoding of the known part, then the mask.
        return (SpatialCondition(map=SpatialConfig(kind="inpaint", layout="compvis")),)
    if key == "concat" and target.endswith("SpatialRescaler"):
        # Semantic synthesis (landscapes): the one-hot map halved to the latent's side, then a
        # learned 1x1 map (`cond_stage_model.channel_mapper`) to a few channels.
        settings = stage.get("params", {}) if isinstance(stage, Mapping) else {}
        semantic = SpatialConfig(
            kind="semantic",
            classes=int(settings["in_channels"]),
            rescaler_channels=int(settings["out_channels"]),
        )
        if 2 ** int(settings.get("n_stages", 1)) != first_stage.factor:
            raise CheckpointError("a SpatialRescaler whose halvings do not reach the latent's side")
        return (SpatialCondition(map=semantic),)
    if key == "concat" and target.endswith("Identity") and in_channels == z + 3:
        # Super-resolution (bsr_sr): the low-resolution image itself at the latent's side.
        return (
            SpatialCondition(map=SpatialConfig(kind="super_resolution", factor=first_stage.factor)),
        )
    if target.endswith("ClassEmbedder") and params.get("conditioning_key") == "crossattn":
        table = state.get(f"{COND_STAGE}embedding.weight")
        if table is None:
            raise CheckpointError(f"a ClassEmbedder config but no {COND_STAGE}embedding.weight")
        classes, width = table.shape
        # ImageNet's 1001-row tables (cin256-v2) keep row 1000 as the unconditional class.
        null = IMAGENET_CLASSES if classes == IMAGENET_CLASSES + 1 else None
        return (ClassTokensCondition(num_classes=int(classes), width=int(width), null_class=null),)
    if target.endswith("BERTEmbedder") and key == "crossattn":
        settings = stage.get("params", {}) if isinstance(stage, Mapping) else {}
        encoder = BertEncoderConfig(
            vocab_size=int(settings.get("vocab_size", 30522)),
            width=int(settings["n_embed"]),
            layers=int(settings["n_layer"]),
            mlp_width=4 * int(settings["n_embed"]),
            max_length=int(settings.get("max_seq_len", 77)),
        )
        if params.get("cond_stage_key") == "coordinates_bbox":
            # The layout model: box-token ids, no tokenizer (`use_tokenizer: false`); three
            # per object, and the crop's two corners when the length leaves two over (92).
            layout = BBoxTokensCondition(
                encoder=encoder,
                max_objects=encoder.max_length // 3,
                encode_crop=encoder.max_length % 3 == 2,
                labels=_labels(vocab.parent),
            )
            return (layout,)
        return (BertCondition(encoder=encoder, vocab=str(vocab)),)
    raise CheckpointError(
        f"the conditioning {target!r} ({params.get('conditioning_key')}) of this zoo model is "
        "not read yet; ldmkit reads the unconditional, class-conditional (ClassEmbedder), "
        "text-to-image (BERTEmbedder), layout-to-image (coordinates_bbox), super-resolution, "
        "inpainting and semantic (SpatialRescaler) families"
    )


def _labels(directory: Path) -> tuple[str, ...]:
    """The class names of a layout model from `labels.txt` beside it (line n names class n),
    if the user keeps one; the zoo ships none."""
    path = directory / LABELS_FILE
    if not path.is_file():
        return ()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"cannot read the class names {path}: {error}") from error
    return tuple(line.strip() for line in lines if line.strip())


def original_params(config_path: Path) -> dict[str, Any]:
    """`model.params` of an original LDM / Stable Diffusion YAML config, read as data."""
    import yaml

    try:
        data = yaml.safe_load(Path(config_path).read_text())
        params = data["model"]["params"]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise CheckpointError(f"--config {config_path} is not readable YAML: {error}") from error
    except (KeyError, TypeError) as error:
        raise CheckpointError(
            f"--config {config_path} has no model.params: it is not an original LDM / Stable "
            "Diffusion config"
        ) from error
    if not isinstance(params, dict):
        raise CheckpointError(f"{config_path}: model.params is not a mapping")
    return params
