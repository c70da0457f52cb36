"""Tiny models in Stable Diffusion 1.x's layout with CompVis / SD key names, built by the tests
of the single-file reader and writer (random weights, tiny widths, CLIP's full vocabulary)."""

import torch
import transformers

from ldmkit.autoencoder import Autoencoder, AutoencoderConfig
from ldmkit.conditioning.clip_vocab import VOCAB_SIZE
from ldmkit.diffusion import linear_schedule
from ldmkit.unet import UNet, UNetConfig

UNET_CONFIG = UNetConfig(
    in_channels=4,
    out_channels=4,
    model_channels=32,
    channel_mult=(1, 2),
    num_res_blocks=1,
    attention_resolutions=(1,),
    num_heads=8,  # SD 1.x's rule: 8 heads in every transformer
    num_head_channels=None,
    context_dim=64,
)
AE_CONFIG = AutoencoderConfig(
    model_channels=32, channel_mult=(1, 2), num_res_blocks=1, z_channels=4
)


def random_weights(module: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
    return module.eval()


def make_parts() -> dict:
    """A UNet, a KL autoencoder and a CLIP text model in SD 1.x's shapes, in miniature."""
    torch.manual_seed(0)
    clip_config = transformers.CLIPTextConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=1,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
    )
    return {
        "unet": random_weights(UNet(UNET_CONFIG)),
        "autoencoder": random_weights(Autoencoder(AE_CONFIG)),
        "clip": random_weights(transformers.CLIPTextModel(clip_config)),
    }


def sd1_state(parts: dict) -> dict[str, torch.Tensor]:
    """The parts under SD 1.x's key names, with the schedule's buffers."""
    state = {f"model.diffusion_model.{k}": v for k, v in parts["unet"].state_dict().items()}
    for key, value in parts["autoencoder"].state_dict().items():
        if not key.startswith("latent_"):
            state[f"first_stage_model.{key}"] = value
    for key, value in parts["clip"].state_dict().items():  # SD 1.x names, whatever transformers'
        state[f"cond_stage_model.transformer.text_model.{key.removeprefix('text_model.')}"] = value
    schedule = linear_schedule(1000, 0.00085, 0.012)
    state["betas"] = schedule.betas.float()
    state["alphas_cumprod"] = schedule.alpha_bar.float()
    return {k: v.contiguous() for k, v in state.items()}


SD2_UNET = UNetConfig(
    in_channels=4,
    out_channels=4,
    model_channels=64,
    channel_mult=(1, 2),
    num_res_blocks=1,
    attention_resolutions=(1,),
    num_heads=None,
    num_head_channels=64,  # SD 2.x's rule: 64-wide heads
    context_dim=64,
    use_linear_in_transformer=True,
)


def openclip_keys(clip: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A transformers CLIP text model under OpenCLIP's names (as SD 2.x files store its text
    tower): q, k, v fused into nn.MultiheadAttention's in_proj, in that order."""
    hf = {k.removeprefix("text_model."): v for k, v in clip.state_dict().items()}
    out = {
        "token_embedding.weight": hf["embeddings.token_embedding.weight"],
        "positional_embedding": hf["embeddings.position_embedding.weight"],
        "ln_final.weight": hf["final_layer_norm.weight"],
        "ln_final.bias": hf["final_layer_norm.bias"],
        "text_projection": torch.eye(hf["final_layer_norm.weight"].shape[0]),
        "logit_scale": torch.tensor(4.6),
    }
    names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc"}
    names |= {"mlp.fc2": "mlp.c_proj", "self_attn.out_proj": "attn.out_proj"}
    layers = {int(k.split(".")[2]) for k in hf if k.startswith("encoder.layers.")}
    for i in layers:
        for ours, theirs in names.items():
            for kind in ("weight", "bias"):
                out[f"transformer.resblocks.{i}.{theirs}.{kind}"] = hf[
                    f"encoder.layers.{i}.{ours}.{kind}"
                ]
        for kind in ("weight", "bias"):
            parts = [hf[f"encoder.layers.{i}.self_attn.{p}_proj.{kind}"] for p in "qkv"]
            out[f"transformer.resblocks.{i}.attn.in_proj_{kind}"] = torch.cat(parts)
    return out


def sd2_parts(
    parts: dict, layers: int = 3
) -> tuple[UNet, torch.nn.Module, dict[str, torch.Tensor]]:
    """(UNet, CLIP, the state of an SD 2.x-layout file): 64-wide heads, linear projections in
    the transformers, an OpenCLIP-named text tower (exact GELU) of `layers` blocks (ViT-H's
    24 to see the penultimate rules); the first stage of `parts`."""
    torch.manual_seed(1)
    unet = random_weights(UNet(SD2_UNET))
    clip = random_weights(
        transformers.CLIPTextModel(
            transformers.CLIPTextConfig(
                vocab_size=VOCAB_SIZE,
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=layers,
                num_attention_heads=1,
                max_position_embeddings=77,
                hidden_act="gelu",
            )
        )
    )
    state = {k: v for k, v in sd1_state(parts).items() if not k.startswith("cond_stage_model")}
    state = {k: v for k, v in state.items() if not k.startswith("model.diffusion_model.")}
    state |= {f"model.diffusion_model.{k}": v for k, v in unet.state_dict().items()}
    state |= {f"cond_stage_model.model.{k}": v for k, v in openclip_keys(clip).items()}
    return unet, clip, {k: v.contiguous() for k, v in state.items()}
