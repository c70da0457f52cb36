"""The autoencoder objective: terms, adaptive GAN weight, discriminator start, hinge loss."""

import torch

from ldmkit.autoencoder import (
    Autoencoder,
    AutoencoderConfig,
    AutoencoderLoss,
    AutoencoderLossConfig,
)
from ldmkit.autoencoder.discriminator import PatchDiscriminator, hinge_discriminator_loss
from ldmkit.autoencoder.loss import adaptive_gan_weight


def _setup(kind: str = "kl", **loss):
    torch.manual_seed(0)
    model = Autoencoder(
        AutoencoderConfig(
            kind=kind, model_channels=8, channel_mult=(1, 2), num_res_blocks=1, norm_groups=4
        )
    )
    loss_fn = AutoencoderLoss(AutoencoderLossConfig(disc_channels=8, **loss), kind)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    return model, loss_fn, x


def test_kl_loss_is_sum_over_pixels_plus_weighted_kl() -> None:
    model, loss_fn, x = _setup(kl_weight=1e-3, disc_start=10)
    out = model(x, sample_posterior=False)
    loss, logs = loss_fn.generator_loss(x, out, step=0, last_layer=model.decoder.last_layer)
    rec = (out.reconstruction - x).abs()
    expected = rec.sum() / 2 + 1e-3 * out.posterior.kl().mean()  # logvar s = 0 at init
    assert torch.allclose(loss, expected, rtol=1e-5)
    assert "g_loss" not in logs  # discriminator not started yet


def test_vq_loss_adds_codebook_term() -> None:
    model, loss_fn, x = _setup("vq", codebook_weight=2.0, disc_start=10)
    out = model(x)
    loss, logs = loss_fn.generator_loss(x, out, 0, model.decoder.last_layer)
    expected = (out.reconstruction - x).abs().mean() + 2.0 * out.quantized.loss
    assert torch.allclose(loss, expected, rtol=1e-5)
    assert logs["perplexity"] >= 1.0


def test_adaptive_weight_is_ratio_of_gradient_norms() -> None:
    layer = torch.nn.Parameter(torch.randn(4, 4))
    rec = (layer * 3.0).sum()
    gan = (layer * 0.5).square().sum()
    weight = adaptive_gan_weight(rec, gan, layer)
    expected = torch.full((4, 4), 3.0).norm() / ((0.5 * layer.detach()).norm() + 1e-4)
    assert torch.allclose(weight, expected, rtol=1e-5)


def test_gan_terms_start_at_disc_start() -> None:
    model, loss_fn, x = _setup(disc_start=5)
    out = model(x)
    d_before, _ = loss_fn.discriminator_loss(x, out.reconstruction, step=4)
    assert float(d_before.detach()) == 0.0
    d_after, _ = loss_fn.discriminator_loss(x, out.reconstruction, step=5)
    assert float(d_after.detach()) > 0.0
    loss, g_logs = loss_fn.generator_loss(x, out, 5, model.decoder.last_layer)
    assert "g_loss" in g_logs and g_logs["d_weight"] > 0
    loss.backward()
    assert model.decoder.conv_out.weight.grad is not None


def test_hinge_loss_and_patch_logits() -> None:
    disc = PatchDiscriminator(3, 8, 3)
    logits = disc(torch.randn(2, 3, 64, 64))
    assert logits.shape[:2] == (2, 1) and logits.shape[-1] > 1  # one logit per patch
    real, fake = torch.full((4,), 2.0), torch.full((4,), -2.0)
    assert float(hinge_discriminator_loss(real, fake)) == 0.0  # both beyond the margin
    assert float(hinge_discriminator_loss(-real, -fake)) == 3.0
