"""Stable-Diffusion-style text conditioning: a frozen CLIP text encoder (the tiny random one of
tests/conftest.py) gives the context; only the UNet trains, and checkpoints name the CLIP's
directory instead of copying it."""

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ldmkit.checkpoint import CheckpointError, load_autoencoder, load_latent_diffusion
from ldmkit.conditioning import ClipCondition, ClipTextConfig, TextCondition, TextEncoderConfig
from ldmkit.data.config import DataConfig
from ldmkit.pipeline import DiffusionConfig, LatentDiffusion
from ldmkit.samplers import SamplingOptions
from ldmkit.training.config import DiffusionRunConfig, DiffusionTrainConfig, OptimConfig
from ldmkit.training.diffusion_trainer import train_diffusion
from ldmkit.unet import unet_preset


def _model_config(clip: Path, context_dim: int = 32) -> DiffusionConfig:
    return DiffusionConfig(
        unet=unet_preset("tiny", context_dim=context_dim),
        conditioners=(ClipCondition(encoder=ClipTextConfig(str(clip), max_length=16)),),
        latent_size=16,
    )


def test_only_the_unet_learns_from_the_clip_context(autoencoder: Path, tiny_clip: Path) -> None:
    model = LatentDiffusion(_model_config(tiny_clip), load_autoencoder(autoencoder))
    assert model.takes_prompts and model.clip is not None and model.context_encoder is None
    assert len(model.trainable_parameters()) == len(list(model.unet.parameters()))
    clip_before = {k: v.clone() for k, v in model.clip.model.state_dict().items()}
    batch = {"image": torch.rand(2, 3, 32, 32) * 2 - 1, "caption": ["a cat", "a dog"]}
    loss, _ = model.loss(batch, [torch.Generator().manual_seed(i) for i in range(2)])
    loss.backward()
    assert all(p.grad is not None for p in model.unet.parameters() if p.requires_grad)
    assert all(p.grad is None for p in model.clip.model.parameters())
    after = model.clip.model.state_dict()
    assert all(torch.equal(clip_before[k], after[k]) for k in clip_before)
    # Guidance contrasts a prompt's context with the empty prompt's.
    cond, uncond = model.conditions(1, {"prompts": ["a cat"]}, 3.0)
    assert cond["context"].shape == (1, 16, 32) and not torch.equal(
        cond["context"], uncond["context"]
    )


def test_context_dim_must_match_the_clip_width(autoencoder: Path, tiny_clip: Path) -> None:
    with pytest.raises(ValueError, match=r"set unet\.context_dim=32"):
        LatentDiffusion(_model_config(tiny_clip, context_dim=64), load_autoencoder(autoencoder))
    with pytest.raises(ValueError, match="text and clip both fill the UNet's 'context'"):
        DiffusionConfig(
            unet=unet_preset("tiny"),
            conditioners=(
                TextCondition(encoder=TextEncoderConfig(width=32, heads=2)),
                ClipCondition(encoder=ClipTextConfig(str(tiny_clip))),
            ),
        )


def test_clip_model_trains_saves_and_loads_from_a_moved_clip(
    autoencoder: Path,
    tiny_clip: Path,
    tmp_path: Path,
    tiny_run: Callable[..., DiffusionRunConfig],
) -> None:
    config = DiffusionTrainConfig(
        autoencoder=str(autoencoder),
        model=_model_config(tiny_clip),
        data=DataConfig(resolution=32, size=8),
        optim=OptimConfig(lr=1e-3, betas=(0.9, 0.999)),
        run=tiny_run(),
    )
    result = train_diffusion(config, tmp_path / "run", show_progress=False)
    files = sorted(p.name for p in result.model_dir.iterdir())
    assert files == ["autoencoder", "config.json", "model.safetensors"]  # no CLIP weights
    saved = json.loads((result.model_dir / "config.json").read_text())["config"]["conditioners"]
    clip = {"path": str(tiny_clip), "max_length": 16, "layer": "last"}
    assert saved == [{"kind": "clip", "dropout": 0.1, "encoder": clip}]
    model = load_latent_diffusion(result.model_dir)
    images = model.sample(2, prompts=["a cat", ""], options=SamplingOptions(steps=1, guidance=2.0))
    assert images.shape == (2, 3, 32, 32) and torch.isfinite(images).all()
    moved = shutil.copytree(tiny_clip, tmp_path / "moved-clip")
    again = load_latent_diffusion(result.model_dir, clip_path=moved)
    assert again.clip is not None and again.clip.config.path == str(moved)
    torch.testing.assert_close(again.context(["a cat"]), model.context(["a cat"]))
    with pytest.raises(CheckpointError, match=r"no CLIP text encoder.*clip_path"):
        load_latent_diffusion(result.model_dir, clip_path=tmp_path / "nowhere")


def test_clip_path_needs_a_clip_model(autoencoder: Path, tmp_path: Path) -> None:
    from ldmkit.checkpoint import save_latent_diffusion

    model = LatentDiffusion(
        DiffusionConfig(unet=unet_preset("tiny", context_dim=None), latent_size=16),
        load_autoencoder(autoencoder),
    )
    directory = save_latent_diffusion(model, tmp_path / "ldm")
    with pytest.raises(CheckpointError, match="uses no CLIP"):
        load_latent_diffusion(directory, clip_path=tmp_path)
