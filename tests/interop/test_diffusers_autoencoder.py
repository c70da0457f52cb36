"""Parity: a random diffusers AutoencoderKL mapped onto ldmkit gives the same outputs."""

import pytest
import torch

from ldmkit.interop.diffusers_autoencoder import autoencoder_from_diffusers

diffusers = pytest.importorskip(
    "diffusers", reason="parity needs the test extra: pip install diffusers"
)

CONFIGS = [
    # f=4, two residual blocks per level (decoder: three), mid attention.
    dict(block_out_channels=(32, 64, 64), layers_per_block=2, latent_channels=4, norm_num_groups=8),
    # f=8, one block per level, three latent channels.
    dict(
        block_out_channels=(16, 32, 32, 64),
        layers_per_block=1,
        latent_channels=3,
        norm_num_groups=8,
    ),
]


def _diffusers_vae(config: dict) -> "diffusers.AutoencoderKL":
    levels = len(config["block_out_channels"])
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        sample_size=32,
        **config,
    )
    # Randomise every parameter (norms included) so no mapping error can hide behind an init.
    with torch.no_grad():
        for p in vae.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return vae.eval()


@pytest.mark.parametrize("config", CONFIGS, ids=["f4", "f8"])
def test_encode_decode_match_diffusers(config: dict) -> None:
    vae = _diffusers_vae(config)
    ours = autoencoder_from_diffusers(vae.state_dict(), dict(vae.config))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref_posterior = vae.encode(x).latent_dist
        posterior = ours.encode(x)
        assert (posterior.mean - ref_posterior.mean).abs().max() < 1e-4
        assert (posterior.logvar - ref_posterior.logvar).abs().max() < 1e-4
        z = torch.randn_like(ref_posterior.mean)
        ref = vae.decode(z).sample
        out = ours.decode(z)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() < 1e-4


def test_scaling_factor_becomes_latent_scale() -> None:
    vae = _diffusers_vae(CONFIGS[1])
    config = dict(vae.config) | {"scaling_factor": 0.5}
    ours = autoencoder_from_diffusers(vae.state_dict(), config)
    assert float(ours.latent_scale) == 0.5
