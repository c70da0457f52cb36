"""Concatenation conditioning: super-resolution and inpainting through LatentDiffusion, hybrid
guidance, and tiled sampling and decoding beyond the training size."""

import pytest
import torch
from tiny_models import tiny_spatial_ldm

from ldmkit.autoencoder import Autoencoder, AutoencoderConfig, pixel_space
from ldmkit.conditioning import SpatialCondition, SpatialConfig
from ldmkit.pipeline import DiffusionConfig, LatentDiffusion
from ldmkit.samplers import SamplingOptions
from ldmkit.unet import unet_preset

_model = tiny_spatial_ldm


def _generators(n: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(i) for i in range(n)]


@pytest.mark.parametrize("kind", ["super_resolution", "inpaint"])
def test_loss_uses_the_condition_and_trains_only_the_unet(kind: str) -> None:
    model = _model(kind)
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    loss, _ = model.loss({"image": images}, _generators(4))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is None for p in model.autoencoder.parameters())
    first = model.unet.input_blocks[0][0].weight.grad  # conv over [z_t, condition]
    assert first is not None and first[:, 3:].abs().sum() > 0
    cached = model.loss({"image": images}, _generators(4), latents=model.encode(images))[0]
    assert torch.allclose(cached, loss)


def test_condition_shapes_follow_the_input_size() -> None:
    sr = _model("super_resolution")
    assert sr.spatial_condition(low_res=torch.zeros(1, 3, 4, 4)).shape == (1, 3, 8, 8)
    assert sr.spatial_condition(low_res=torch.zeros(1, 3, 10, 6)).shape == (1, 3, 20, 12)
    inpaint = _model("inpaint")
    image, mask = torch.zeros(2, 3, 16, 16), torch.ones(2, 1, 16, 16)
    assert inpaint.spatial_condition(image=image, mask=mask).shape == (2, 4, 8, 8)
    with pytest.raises(ValueError, match="mask must be"):
        inpaint.spatial_condition(image=image, mask=mask[..., :8])
    with pytest.raises(ValueError, match="image and its mask"):
        inpaint.spatial_condition(low_res=image)


def test_sampling_needs_the_condition_and_follows_its_size() -> None:
    model = _model("super_resolution")
    low = torch.rand(2, 3, 4, 4) * 2 - 1
    condition = model.spatial_condition(low_res=low)
    options = SamplingOptions(steps=2, guidance=1.0)
    out = model.sample(2, condition=condition, options=options)
    assert out.shape == (2, 3, 16, 16)
    assert not torch.equal(out[0], model.sample(2, condition=-condition, options=options)[0])
    with pytest.raises(ValueError, match="condition="):
        model.sample(2, options=options)
    with pytest.raises(ValueError, match="spatial dropout"):
        model.sample(2, condition=condition, options=options.replace(guidance=3.0))
    guided = _model("super_resolution", dropout=0.1)
    assert guided.sample(2, condition=condition, options=options.replace(guidance=3.0)).shape == (
        2,
        3,
        16,
        16,
    )


def test_hybrid_model_guides_with_the_class_and_keeps_the_image() -> None:
    model = _model("inpaint", classes=4)
    image, mask = torch.zeros(2, 3, 16, 16), torch.zeros(2, 1, 16, 16)
    condition = model.spatial_condition(image=image, mask=mask)
    cond, uncond = model.conditions(
        2, {"labels": torch.tensor([0, 3]), "condition": condition}, 3.0
    )
    assert torch.equal(cond["concat"], uncond["concat"])
    assert uncond["y"].tolist() == [4, 4]
    loss, _ = model.loss({"image": image, "label": torch.tensor([0, 3])}, _generators(2))
    assert torch.isfinite(loss)


def test_wrong_unet_channels_name_the_fix() -> None:
    ae = Autoencoder(
        AutoencoderConfig(model_channels=8, channel_mult=(1, 2), num_res_blocks=1, norm_groups=4)
    )
    config = DiffusionConfig(
        unet=unet_preset("tiny", context_dim=None),
        conditioners=(SpatialCondition(map=SpatialConfig(kind="inpaint")),),
    )
    with pytest.raises(ValueError, match=r"unet.in_channels=7 \(3 \+ 4 of the inpaint"):
        LatentDiffusion(config, ae)


def test_tiled_sampling_beyond_the_training_size() -> None:
    model = _model("super_resolution")
    condition = model.spatial_condition(low_res=torch.rand(1, 3, 12, 12) * 2 - 1)  # 24x24 latent
    options = SamplingOptions(steps=2, guidance=1.0)
    whole = model.sample(1, condition=condition, options=options)
    tiled = model.sample(1, condition=condition, options=options.replace(tile=8))
    assert tiled.shape == whole.shape == (1, 3, 48, 48)
    assert (tiled - whole).abs().mean() < 0.5  # same model and noise, tiles see less context


def test_tiled_decoding_is_exact_for_pixels() -> None:
    """Autoencoders' tiled decoding: tests/autoencoder/test_tiled_decoder.py."""
    pixels = LatentDiffusion(
        DiffusionConfig(unet=unet_preset("tiny", context_dim=None)),
        Autoencoder(pixel_space(3)),
    )
    z = torch.randn(1, 3, 40, 40)
    assert torch.allclose(pixels.decode(z, tile=16), pixels.decode(z), atol=1e-6)
