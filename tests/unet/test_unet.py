"""UNet shapes across configs, zero-init output, gradient checkpointing, clear errors."""

import dataclasses

import pytest
import torch

from ldmkit.unet import UNET_PRESETS, UNet, UNetConfig, unet_preset
from ldmkit.unet.res_block import ResBlock


def tiny(**overrides) -> UNetConfig:
    base = dict(
        in_channels=3,
        out_channels=3,
        model_channels=8,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_resolutions=(2,),
        num_heads=None,
        num_head_channels=8,
        norm_groups=4,
    )
    return UNetConfig(**(base | overrides))


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Overwrite every parameter (zero-initialised ones too) so no path hides behind an init."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
    return model


CONFIGS = {
    "context-conv": tiny(context_dim=6),
    "context-linear": tiny(context_dim=6, use_linear_in_transformer=True, transformer_depth=2),
    "no-context": tiny(attention_resolutions=(1, 2)),
    "classes": tiny(num_classes=5),
    "classes+context": tiny(num_classes=5, context_dim=6),
    "updown-scaleshift": tiny(
        resblock_updown=True, use_scale_shift_norm=True, conv_resample=False, num_res_blocks=2
    ),
    "three-levels-heads": tiny(
        channel_mult=(1, 2, 3),
        attention_resolutions=(1, 4),
        num_heads=2,
        num_head_channels=None,
        out_channels=6,
        context_dim=6,
    ),
}


def inputs(config: UNetConfig, batch: int = 2, size: int = 8) -> dict[str, torch.Tensor]:
    args = {
        "x": torch.randn(batch, config.in_channels, size, size),
        "t": torch.randint(0, 1000, (batch,)),
    }
    if config.context_dim is not None:
        args["context"] = torch.randn(batch, 5, config.context_dim)
    if config.num_classes is not None:
        args["y"] = torch.randint(0, config.num_classes, (batch,))
    return args


@pytest.mark.parametrize("name", list(CONFIGS))
def test_shapes_and_zero_output_at_construction(name: str) -> None:
    config = CONFIGS[name]
    torch.manual_seed(0)
    model = UNet(config)
    args = inputs(config)
    out = model(**args)
    assert out.shape == (2, config.out_channels, 8, 8)
    assert torch.equal(out, torch.zeros_like(out))  # zero-initialised output convolution
    randomize(model)
    out = model(**args)
    assert out.shape == (2, config.out_channels, 8, 8)
    assert out.abs().max() > 0


def test_conditioning_changes_output() -> None:
    config = tiny(context_dim=6, num_classes=4)
    model = randomize(UNet(config)).eval()
    args = inputs(config)
    with torch.no_grad():
        base = model(**args)
        assert not torch.allclose(base, model(**(args | {"context": torch.randn(2, 5, 6)})))
        assert not torch.allclose(base, model(**(args | {"y": (args["y"] + 1) % 4})))
        assert not torch.allclose(base, model(**(args | {"t": args["t"] + 1})))
        # Continuous and scalar t are accepted; a scalar is broadcast over the batch.
        t = torch.tensor(3.0)
        torch.testing.assert_close(model(**(args | {"t": t})), model(**(args | {"t": t.expand(2)})))


def test_parameter_names_follow_compvis() -> None:
    names = set(UNet(tiny(context_dim=6, num_classes=3)).state_dict())
    for name in (
        "time_embed.0.weight",
        "time_embed.2.weight",
        "label_emb.weight",
        "input_blocks.0.0.weight",
        "input_blocks.1.0.in_layers.0.weight",
        "input_blocks.1.0.in_layers.2.weight",
        "input_blocks.1.0.emb_layers.1.weight",
        "input_blocks.1.0.out_layers.0.weight",
        "input_blocks.1.0.out_layers.3.weight",
        "input_blocks.2.0.op.weight",
        "input_blocks.3.0.skip_connection.weight",
        "input_blocks.3.1.norm.weight",
        "input_blocks.3.1.proj_in.weight",
        "input_blocks.3.1.transformer_blocks.0.attn1.to_q.weight",
        "input_blocks.3.1.transformer_blocks.0.attn2.to_k.weight",
        "input_blocks.3.1.transformer_blocks.0.ff.net.0.proj.weight",
        "input_blocks.3.1.transformer_blocks.0.ff.net.2.weight",
        "input_blocks.3.1.transformer_blocks.0.norm3.weight",
        "input_blocks.3.1.proj_out.weight",
        "middle_block.0.in_layers.0.weight",
        "middle_block.1.proj_out.weight",
        "middle_block.2.out_layers.3.weight",
        "output_blocks.1.1.proj_in.weight",
        "output_blocks.1.2.conv.weight",
        "output_blocks.3.0.skip_connection.weight",
        "out.0.weight",
        "out.2.weight",
    ):
        assert name in names, name


def test_gradient_checkpointing_gives_equal_gradients() -> None:
    config = tiny(context_dim=6, num_classes=3, dropout=0.1, transformer_depth=2)
    plain = randomize(UNet(config))
    checkpointed = randomize(UNet(dataclasses.replace(config, use_checkpoint=True)))
    calls = {"plain": 0, "checkpointed": 0}
    for key, model in (("plain", plain), ("checkpointed", checkpointed)):

        def count(*_: object, key: str = key) -> None:
            calls[key] += 1

        model.middle_block[0].register_forward_pre_hook(count)
    args = inputs(config)
    grads = []
    for model in (plain, checkpointed):
        torch.manual_seed(1)  # same dropout masks in both runs
        model(**args).square().mean().backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, msg=name)
    # Recomputation in backward enters the checkpointed block a second time (a pre-hook: the
    # recomputation stops early, before forward hooks would fire).
    assert calls == {"plain": 1, "checkpointed": 2}


def test_invalid_configs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="num_heads=3 does not divide"):
        tiny(num_heads=3, num_head_channels=None)
    with pytest.raises(ValueError, match="num_head_channels=6 does not divide"):
        tiny(num_head_channels=6)
    with pytest.raises(ValueError, match="exactly one of num_heads"):
        tiny(num_heads=2)
    with pytest.raises(ValueError, match="exactly one of num_heads"):
        tiny(num_head_channels=None)
    with pytest.raises(ValueError, match=r"attention_resolutions \[8\].*choose from \(1, 2\)"):
        tiny(attention_resolutions=(8,))
    with pytest.raises(ValueError, match="norm_groups=3"):
        tiny(norm_groups=3)
    with pytest.raises(ValueError, match="channel_mult"):
        tiny(channel_mult=())
    with pytest.raises(ValueError, match="dropout"):
        tiny(dropout=1.0)
    with pytest.raises(ValueError, match="context_dim"):
        tiny(context_dim=0)
    with pytest.raises(ValueError, match="up or down"):
        ResBlock(8, 16, 8, groups=4, up=True, down=True)
    with pytest.raises(ValueError, match="unknown UNet preset 'huge'"):
        unet_preset("huge")


def test_invalid_inputs_are_clear_errors() -> None:
    with_context = UNet(tiny(context_dim=6))
    args = inputs(with_context.config)
    with pytest.raises(ValueError, match="needs context"):
        with_context(args["x"], args["t"])
    with pytest.raises(ValueError, match="context must be"):
        with_context(args["x"], args["t"], torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match="multiples of 2"):
        with_context(torch.randn(2, 3, 7, 8), args["t"], args["context"])
    with pytest.raises(ValueError, match=r"x must be \(B, 3, H, W\)"):
        with_context(torch.randn(2, 4, 8, 8), args["t"], args["context"])
    with pytest.raises(ValueError, match="t must be"):
        with_context(args["x"], torch.zeros(3), args["context"])
    plain = UNet(tiny())
    with pytest.raises(ValueError, match="no cross-attention"):
        plain(args["x"], args["t"], args["context"])
    with pytest.raises(ValueError, match="no class embedding"):
        plain(args["x"], args["t"], y=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="integer class labels"):
        UNet(tiny(num_classes=3))(args["x"], args["t"])
    with pytest.raises(ValueError, match="integer class labels"):
        UNet(tiny(num_classes=3))(args["x"], args["t"], y=torch.zeros(2))


# Parameter counts; sd-v1 is Stable Diffusion v1's published 859,520,964.
PRESET_PARAMETERS = {
    "tiny": 253_075,
    "small": 6_714_435,
    "ldm4-cin256": 400_920_579,
    "ldm8-cin256": 394_984_196,
    "ldm-txt2img": 872_300_484,
    "sd-v1": 859_520_964,
    "sd-v2": 865_910_724,
}


@pytest.mark.parametrize("name", list(UNET_PRESETS))
def test_presets_build_with_expected_sizes(name: str) -> None:
    with torch.device("meta"):  # shapes only: the paper sizes are never allocated
        model = UNet(unet_preset(name))
    assert sum(p.numel() for p in model.parameters()) == PRESET_PARAMETERS[name]


def test_tiny_preset_runs() -> None:
    config = unet_preset("tiny", num_classes=3)
    out = UNet(config)(**inputs(config, size=16))
    assert out.shape == (2, 3, 16, 16)


@pytest.mark.parametrize("frequencies", [0, 3])
def test_position_features_let_attention_tell_pixels_apart(frequencies: int) -> None:
    from ldmkit.unet.transformer import SpatialTransformer

    torch.manual_seed(0)
    block = SpatialTransformer(32, 2, 16, context_dim=8, groups=8, position_frequencies=frequencies)
    for p in block.proj_out.parameters():  # zero at construction; make the block visible
        torch.nn.init.normal_(p, std=0.1)
    x = torch.randn(1, 32, 1, 1).expand(2, 32, 5, 6).contiguous()  # the same vector everywhere
    out = block(x, torch.randn(2, 3, 8))
    spread = (out - out.mean((2, 3), keepdim=True)).abs().max()
    if frequencies:  # queries know their place: a constant map comes out varying
        assert spread > 1e-3
        assert "position.weight" in block.state_dict()
    else:  # without them every pixel is the same token, so the output stays constant
        assert spread < 1e-5
    config = unet_preset("tiny", position_frequencies=frequencies)
    assert ("position.weight" in "".join(UNet(config).state_dict())) == bool(frequencies)
    with pytest.raises(ValueError, match="position_frequencies must be >= 0"):
        unet_preset("tiny", position_frequencies=-1)
