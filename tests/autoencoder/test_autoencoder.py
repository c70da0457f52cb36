"""Encoder/decoder shapes for every f, posteriors, quantiser gradients, latent statistics."""

import pytest
import torch

from ldmkit.autoencoder import Autoencoder, AutoencoderConfig, measure_latent_statistics
from ldmkit.autoencoder.quantizer import VectorQuantizer
from ldmkit.data.shapes import ShapesConfig, ShapesDataset

MULTS = {1: (1,), 2: (1, 2), 4: (1, 2, 2), 8: (1, 1, 2, 2), 16: (1, 1, 1, 2, 2), 32: (1,) * 6}


def tiny(kind: str = "kl", f: int = 4, **overrides) -> AutoencoderConfig:
    base = dict(
        kind=kind,
        model_channels=8,
        channel_mult=MULTS[f],
        num_res_blocks=1,
        norm_groups=4,
        z_channels=3,
    )
    return AutoencoderConfig(**(base | overrides))


@pytest.mark.parametrize("kind", ["kl", "vq"])
@pytest.mark.parametrize("f", [1, 2, 4, 8, 16, 32])
def test_shapes_for_every_factor(kind: str, f: int) -> None:
    model = Autoencoder(tiny(kind, f, attn_factors=(f,)))
    assert model.factor == f
    x = torch.randn(2, 3, 64, 64)
    posterior = model.encode(x)
    assert posterior.mode().shape == (2, 3, 64 // f, 64 // f)
    out = model(x)
    assert out.reconstruction.shape == x.shape
    assert model.decode(posterior.mode()).shape == x.shape
    assert model.to_latent(x).shape == (2, 3, 64 // f, 64 // f)


@pytest.mark.parametrize("kind", ["kl", "vq"])
def test_patch_stem_folds_pixels_into_channels(kind: str) -> None:
    model = Autoencoder(tiny(kind, 2, patch=2, attn_factors=(2,)))  # f = 2 * 2
    assert model.factor == 4 and model.encoder.conv_in.in_channels == 3 * 4
    x = torch.randn(2, 3, 32, 32)
    z = model.to_latent(x)
    assert z.shape == (2, 3, 8, 8)
    assert model.decode(z).shape == x.shape
    assert model.decoder.conv_out.out_channels == 3 * 4  # unfolded by pixel shuffle


def test_invalid_configs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="len\\(channel_mult\\)"):
        AutoencoderConfig(channel_mult=(1,) * 7)
    with pytest.raises(ValueError, match="patch 3 and channel_mult"):
        AutoencoderConfig(channel_mult=(1, 2), patch=3)  # f = 6
    with pytest.raises(ValueError, match="attn_factors"):
        AutoencoderConfig(channel_mult=(1, 2), attn_factors=(4,))
    with pytest.raises(ValueError, match="groups"):
        Autoencoder(AutoencoderConfig(model_channels=12, norm_groups=8))
    with pytest.raises(ValueError, match="norm_groups must be >= 0"):
        AutoencoderConfig(norm_groups=-1)


def test_norm_groups_zero_builds_an_unnormalised_network() -> None:
    model = Autoencoder(tiny("kl", 4, norm_groups=0, attn_factors=(2,)))
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in model.modules())
    normed = Autoencoder(tiny("kl", 4, attn_factors=(2,)))
    # Only the norms' affine parameters are gone: 2 per GroupNorm.
    norms = [m for m in normed.modules() if isinstance(m, torch.nn.GroupNorm)]
    count = sum(p.numel() for p in model.parameters())
    assert count == sum(p.numel() for p in normed.parameters()) - sum(
        2 * m.num_channels for m in norms
    )
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.reconstruction.shape == x.shape and torch.isfinite(out.reconstruction).all()


def test_kl_posterior_is_gaussian_with_clamped_logvar() -> None:
    model = Autoencoder(tiny("kl"))
    posterior = model.encode(torch.randn(3, 3, 32, 32))
    assert torch.all(posterior.kl() >= 0)
    torch.manual_seed(0)
    a = posterior.sample()
    torch.manual_seed(0)
    b = posterior.sample()
    assert torch.equal(a, b) and not torch.equal(a, posterior.mode())
    from ldmkit.autoencoder.distributions import DiagonalGaussian

    extreme = DiagonalGaussian(
        torch.cat([torch.zeros(1, 2, 2, 2), torch.full((1, 2, 2, 2), 99.0)], 1)
    )
    assert float(extreme.logvar.max()) == 20.0


def test_vq_straight_through_gradient_reaches_encoder() -> None:
    quantizer = VectorQuantizer(16, 3)
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    q = quantizer(z)
    upstream = torch.randn_like(q.z_q)
    (q.z_q * upstream).sum().backward()
    # Straight-through: d z_q / d z is the identity.
    assert torch.allclose(z.grad, upstream)
    assert torch.allclose(q.z_q.detach(), quantizer.embed(q.indices), atol=1e-6)
    assert q.indices.shape == (2, 4, 4)


def test_vq_loss_trains_codebook_and_commitment() -> None:
    quantizer = VectorQuantizer(8, 3, beta=0.25)
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    quantizer(z).loss.backward()
    assert quantizer.embedding.weight.grad.abs().sum() > 0
    assert z.grad.abs().sum() > 0


def test_dead_codes_are_restarted_onto_encodings() -> None:
    quantizer = VectorQuantizer(32, 3)
    quantizer.train()
    z = torch.randn(4, 3, 8, 8) + 10.0  # far from the tiny initial codebook: one code wins
    for _ in range(50):
        quantizer(z)
    dead = quantizer.dead_codes(1.0)
    assert dead.sum() >= 30
    restarted = quantizer.restart_dead_codes(z, 1.0, torch.Generator().manual_seed(0))
    assert restarted == int(dead.sum())
    flat = z.permute(0, 2, 3, 1).reshape(-1, 3)
    for code in quantizer.embedding.weight[dead]:
        assert (flat - code).abs().sum(1).min() < 1e-6  # every restarted code is an encoding
    q = quantizer(z)
    assert q.perplexity > 2.0


def test_latent_statistics_give_unit_std() -> None:
    torch.manual_seed(0)
    model = Autoencoder(tiny("kl"))
    batches = [torch.randn(4, 3, 32, 32) for _ in range(3)]
    shift, scale = measure_latent_statistics(model, batches, use_shift=True)
    model.set_latent_statistics(shift, scale)
    z = torch.cat([model.to_latent(x) for x in batches])
    assert abs(float(z.detach().mean())) < 1e-4
    assert abs(float(z.detach().std()) - 1.0) < 1e-3
    x = batches[0]
    expected = model.decode(model.encode(x).mode())
    assert torch.allclose(model.from_latent(model.to_latent(x)), expected, atol=1e-5)


@pytest.mark.slow
def test_tiny_autoencoder_overfits_a_fixed_batch() -> None:
    torch.manual_seed(0)
    model = Autoencoder(tiny("kl", 2, model_channels=16, norm_groups=8))
    data = ShapesDataset(ShapesConfig(resolution=32), size=2, seed=0)
    x = torch.stack([data[i]["image"] for i in range(2)])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(250):
        loss = (model(x, sample_posterior=False).reconstruction - x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


# Tiled without group norms or attention in the levels: tiles then equal the whole decode.
@pytest.mark.parametrize(("tile", "groups", "attention"), [(None, 4, (4,)), (3, 0, ())])
@pytest.mark.parametrize("kind", ["kl", "vq"])
def test_decoding_without_autograd_is_the_plain_decode_in_channels_last(
    kind, tile, groups, attention
):
    """Sampling's decode (no autograd, the CPU), whole and tiled: every convolution reads
    channels-last input, the residual blocks work in place, the upsamplings fold into 2x2
    convolutions; the image equals the training path's (autograd on, frozen weights) and comes
    back contiguous."""
    torch.manual_seed(0)
    config = tiny(kind, 8, attn_factors=attention, num_res_blocks=2, norm_groups=groups)
    model = Autoencoder(config).eval().requires_grad_(False)
    z = torch.randn(2, 3, 8, 8)
    layouts: list[bool] = []  # channels-last strides: compact, or a tile cropped from such
    for conv in (m for m in model.decoder.modules() if isinstance(m, torch.nn.Conv2d)):
        conv.register_forward_pre_hook(lambda _, args: layouts.append(args[0].stride(1) == 1))
    plain = model.decode(z)  # autograd on: the plain path, no graph (frozen weights)
    assert not any(layouts) and not plain.requires_grad
    layouts.clear()
    kept = z.clone()
    with torch.no_grad():
        fast = model.decode(z, tile)
    assert layouts and all(layouts)
    assert fast.is_contiguous() and torch.equal(z, kept)
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)
