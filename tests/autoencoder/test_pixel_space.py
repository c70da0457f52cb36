"""The identity first stage: pixel-space diffusion (LDM-1) through the same pipeline."""

import dataclasses
from pathlib import Path

import pytest
import torch

from ldmkit.autoencoder import Autoencoder, AutoencoderConfig, pixel_space
from ldmkit.checkpoint import PIXELS, load_first_stage, load_latent_diffusion
from ldmkit.conditioning import ClassCondition
from ldmkit.data.config import DataConfig
from ldmkit.pipeline import DiffusionConfig
from ldmkit.samplers import SamplingOptions
from ldmkit.training.autoencoder_trainer import train_autoencoder
from ldmkit.training.config import (
    AutoencoderTrainConfig,
    DiffusionRunConfig,
    DiffusionTrainConfig,
    OptimConfig,
)
from ldmkit.training.diffusion_trainer import train_diffusion
from ldmkit.unet import unet_preset


def test_pixel_space_is_the_identity_with_no_weights() -> None:
    model = Autoencoder(pixel_space(3))
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    assert torch.equal(model.to_latent(x), x)
    assert torch.equal(model.from_latent(x), x)
    assert model.factor == 1
    assert not list(model.parameters())


def test_pixel_space_config_is_checked() -> None:
    with pytest.raises(ValueError, match="pixel-space first stage needs channel_mult"):
        AutoencoderConfig(kind="pixel", channel_mult=(1, 2))
    with pytest.raises(ValueError, match="z_channels == in_channels"):
        AutoencoderConfig(kind="pixel", channel_mult=(1,), z_channels=4)


def test_pixel_space_cannot_be_trained(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to train"):
        train_autoencoder(AutoencoderTrainConfig(model=pixel_space()), tmp_path)


def test_first_stage_keyword_or_folder(tmp_path: Path) -> None:
    assert load_first_stage(PIXELS, 1).config == pixel_space(1)
    with pytest.raises(Exception, match="model"):
        load_first_stage(tmp_path / "missing")


def test_pixel_space_diffusion_trains_saves_and_samples(tmp_path: Path) -> None:
    unet = unet_preset("tiny", context_dim=None, num_classes=31)
    config = DiffusionTrainConfig(
        autoencoder=PIXELS,
        model=DiffusionConfig(
            unet=unet, conditioners=(ClassCondition(num_classes=30),), latent_size=32
        ),
        data=DataConfig(resolution=32, size=16, single_object=True),
        optim=OptimConfig(lr=1e-3, betas=(0.9, 0.999)),
        run=DiffusionRunConfig(
            steps=2, batch_size=4, sample_every=0, sample_count=2, sample_steps=2
        ),
    )
    result = train_diffusion(config, tmp_path, show_progress=False)
    model = load_latent_diffusion(result.model_dir)
    assert model.autoencoder.config.kind == "pixel"
    images = model.sample(2, torch.tensor([0, 1]), options=SamplingOptions(steps=2, guidance=1.0))
    assert images.shape == (2, 3, 32, 32)
    # A different latent size than the images' side is a config error for pixel space too.
    with pytest.raises(ValueError, match=r"set model\.latent_size=32"):
        bad = dataclasses.replace(config, model=dataclasses.replace(config.model, latent_size=16))
        train_diffusion(bad, tmp_path / "bad", show_progress=False)
