"""Parity: a random diffusers UNet2DConditionModel mapped onto ldmkit gives the same outputs."""

import pytest
import torch

from ldmkit.interop.diffusers_unet import (
    unet_config_from_diffusers,
    unet_from_diffusers,
    unet_state_from_diffusers,
)
from ldmkit.unet import UNet, unet_preset

diffusers = pytest.importorskip(
    "diffusers", reason="parity needs the test extra: pip install diffusers"
)

CONFIGS = {
    # SD-like layout in miniature: attention at the first level only, conv projections.
    "two-levels": dict(
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    ),
    # Three levels, two blocks, linear projections, deeper transformers, heads of fixed width
    # (SD 2 style), scale-shift norm and a class embedding added to the timestep embedding.
    "three-levels-classes": dict(
        block_out_channels=(16, 32, 64),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=24,
        attention_head_dim=(2, 4, 8),
        use_linear_projection=True,
        transformer_layers_per_block=2,
        resnet_time_scale_shift="scale_shift",
        num_class_embeds=7,
        norm_num_groups=8,
    ),
}


def _diffusers_unet(config: dict) -> "diffusers.UNet2DConditionModel":
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(in_channels=4, out_channels=3, sample_size=16, **config)
    # Randomise every parameter (zero-initialised ones included) so no mapping error can hide.
    with torch.no_grad():
        for p in unet.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return unet.eval()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_forward_matches_diffusers(name: str) -> None:
    reference = _diffusers_unet(CONFIGS[name])
    ours = unet_from_diffusers(reference.state_dict(), dict(reference.config))
    x = torch.randn(2, 4, 16, 16)
    t = torch.tensor([3, 817])
    context = torch.randn(2, 5, reference.config.cross_attention_dim)
    labels = torch.tensor([0, 6]) if reference.config.num_class_embeds else None
    with torch.no_grad():
        expected = reference(x, t, context, class_labels=labels).sample
        out = ours(x, t, context, labels)
    assert out.shape == expected.shape == (2, 3, 16, 16)
    assert (out - expected).abs().max() < 1e-4


def test_config_translation() -> None:
    config = unet_config_from_diffusers(CONFIGS["three-levels-classes"])
    assert config.channel_mult == (1, 2, 4)
    assert config.attention_resolutions == (2, 4)
    assert (config.num_heads, config.num_head_channels) == (None, 8)
    assert config.num_classes == 7 and config.use_scale_shift_norm
    # SD v1's diffusers config gives the sd-v1 preset's architecture.
    sd = unet_config_from_diffusers(
        dict(
            block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=768,
        )
    )
    assert (sd.attention_resolutions, sd.num_heads, sd.context_dim) == ((1, 2, 4), 8, 768)


def test_unsupported_diffusers_configs_are_errors() -> None:
    base = CONFIGS["two-levels"]
    with pytest.raises(ValueError, match="flip_sin_to_cos"):
        unet_config_from_diffusers(base | {"flip_sin_to_cos": False})
    with pytest.raises(ValueError, match="must mirror"):
        unet_config_from_diffusers(base | {"up_block_types": ("UpBlock2D", "UpBlock2D")})
    with pytest.raises(ValueError, match="class_embed_type"):
        unet_config_from_diffusers(base | {"class_embed_type": "timestep"})
    with pytest.raises(ValueError, match="neither a fixed head count nor a fixed head width"):
        unet_config_from_diffusers(base | {"attention_head_dim": (3, 8)})


@pytest.mark.parametrize("version", ["sd-v1", "sd-v2"])
def test_stable_diffusion_layout_maps_onto_preset(version: str) -> None:
    # Full-size SD UNets on the meta device: every diffusers key lands on a preset parameter of
    # the same shape (diffusers' attention_head_dim: 8 heads for v1, 5/10/20/20 for v2).
    sd2 = version == "sd-v2"
    config = dict(
        cross_attention_dim=1024 if sd2 else 768,
        attention_head_dim=(5, 10, 20, 20) if sd2 else 8,
        use_linear_projection=sd2,
    )
    with torch.device("meta"):
        reference = diffusers.UNet2DConditionModel(**config)
        ours = UNet(unet_preset(version))
    # Gradient checkpointing is a training option, not part of the architecture.
    expected = unet_preset(version, use_checkpoint=False)
    assert unet_config_from_diffusers(dict(reference.config)) == expected
    mapped = unet_state_from_diffusers(reference.state_dict(), ours.config)
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in mapped.items()} == shapes
