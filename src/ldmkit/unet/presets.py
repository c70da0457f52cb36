"""Named UNet sizes: `tiny` (tests), `small` (this CPU) and the published LDM / SD backbones."""

from dataclasses import replace
from typing import Any

from ldmkit.unet.config import UNetConfig

# Stable Diffusion v1 (CompVis v1-inference.yaml): attention at factors 1, 2, 4, 8 heads.
_SD = UNetConfig(
    in_channels=4,
    out_channels=4,
    model_channels=320,
    channel_mult=(1, 2, 4, 4),
    num_res_blocks=2,
    attention_resolutions=(4, 2, 1),
    num_heads=8,
    num_head_channels=None,
    transformer_depth=1,
    context_dim=768,
    use_checkpoint=True,
)

UNET_PRESETS: dict[str, UNetConfig] = {
    # Seconds on a CPU: for tests and smoke runs.
    "tiny": UNetConfig(
        in_channels=3,
        out_channels=3,
        model_channels=16,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_resolutions=(2,),
        num_head_channels=16,
        context_dim=32,
        norm_groups=8,
    ),
    # A few M parameters for a 2-core CPU, e.g. on 3x16x16 latents (kl-f4 of 64 px images);
    # heads of width 32, since CPU SDPA is slow for very narrow heads.
    "small": UNetConfig(
        in_channels=3,
        out_channels=3,
        model_channels=64,
        channel_mult=(1, 2, 2),
        num_res_blocks=1,
        attention_resolutions=(2, 4),
        num_head_channels=32,
        context_dim=128,
    ),
    # LDM-4 class-conditional ImageNet 256 (CompVis cin256-v2.yaml, Rombach et al. 2022 Tab. 18);
    # the class reaches the UNet as a 512-d cross-attention token from a learned embedding.
    "ldm4-cin256": UNetConfig(
        in_channels=3,
        out_channels=3,
        model_channels=192,
        channel_mult=(1, 2, 3, 5),
        num_res_blocks=2,
        attention_resolutions=(8, 4, 2),
        num_heads=1,
        num_head_channels=None,
        transformer_depth=1,
        context_dim=512,
    ),
    # LDM-8 class-conditional ImageNet (CompVis cin-ldm-vq-f8.yaml).
    "ldm8-cin256": UNetConfig(
        in_channels=4,
        out_channels=4,
        model_channels=256,
        channel_mult=(1, 2, 4),
        num_res_blocks=2,
        attention_resolutions=(4, 2, 1),
        num_head_channels=32,
        transformer_depth=1,
        context_dim=512,
    ),
    # LDM-KL-8 text-to-image, LAION-400M (CompVis txt2img-1p4B-eval.yaml; BERT context 1280).
    "ldm-txt2img": replace(_SD, context_dim=1280),
    "sd-v1": _SD,
    # Stable Diffusion 2 (v2-inference.yaml): 64-channel heads, OpenCLIP-H context, linear proj.
    "sd-v2": replace(
        _SD,
        num_heads=None,
        num_head_channels=64,
        context_dim=1024,
        use_linear_in_transformer=True,
    ),
}


def unet_preset(name: str, **overrides: Any) -> UNetConfig:
    """The named preset, with any fields replaced (e.g. `in_channels=3`, `num_classes=11`)."""
    if name not in UNET_PRESETS:
        raise ValueError(f"unknown UNet preset {name!r}; choose from {', '.join(UNET_PRESETS)}")
    return replace(UNET_PRESETS[name], **overrides)
