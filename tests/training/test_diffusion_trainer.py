"""The latent-diffusion loop: outputs, exact resume, EMA, and two-process DDP (gloo)."""

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ldmkit.checkpoint import load_latent_diffusion
from ldmkit.conditioning import ClassCondition
from ldmkit.data.config import DataConfig
from ldmkit.pipeline import DiffusionConfig
from ldmkit.samplers import SamplingOptions
from ldmkit.training.checkpoints import latest_checkpoint
from ldmkit.training.config import DiffusionRunConfig, DiffusionTrainConfig, OptimConfig
from ldmkit.training.diffusion_trainer import train_diffusion
from ldmkit.training.ema import EMA
from ldmkit.unet import unet_preset


def _config(autoencoder: Path, steps: int = 6, **run) -> DiffusionTrainConfig:
    unet = unet_preset("tiny", context_dim=None, num_classes=31)
    return DiffusionTrainConfig(
        autoencoder=str(autoencoder),
        model=DiffusionConfig(
            unet=unet, conditioners=(ClassCondition(num_classes=30),), latent_size=16
        ),
        data=DataConfig(resolution=32, size=32, single_object=True),
        optim=OptimConfig(lr=1e-3, betas=(0.9, 0.999)),
        run=DiffusionRunConfig(
            steps=steps,
            batch_size=8,
            log_every=1,
            sample_every=3,
            checkpoint_every=3,
            sample_count=4,
            sample_steps=2,
            ema_decay=0.9,
            **run,
        ),
    )


def test_run_writes_model_samples_and_loss_curve(autoencoder: Path, tmp_path: Path) -> None:
    result = train_diffusion(_config(autoencoder), tmp_path, show_progress=False)
    assert result.step == 6
    for name in ("samples.png", "loss.png", "history.json", "config.yaml"):
        assert (tmp_path / name).is_file(), name
    assert latest_checkpoint(tmp_path).name == "step-00000006"
    model = load_latent_diffusion(result.model_dir)
    images = model.sample(2, torch.tensor([0, 5]), options=SamplingOptions(steps=2, guidance=2.0))
    assert images.shape == (2, 3, 32, 32)
    assert all("loss" in row for row in result.history if "skipped_steps" in row)


def test_resume_equals_uninterrupted_run(autoencoder: Path, tmp_path: Path) -> None:
    straight = train_diffusion(_config(autoencoder, 6), tmp_path / "a", show_progress=False)
    train_diffusion(_config(autoencoder, 3), tmp_path / "b", show_progress=False)
    resumed = train_diffusion(_config(autoencoder, 6), tmp_path / "b", show_progress=False)
    assert resumed.step == straight.step == 6
    a = load_file(str(latest_checkpoint(tmp_path / "a") / "train_state.safetensors"))
    b = load_file(str(latest_checkpoint(tmp_path / "b") / "train_state.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_gradient_accumulation_matches_one_big_batch(autoencoder: Path, tmp_path: Path) -> None:
    one = train_diffusion(_config(autoencoder, 2), tmp_path / "a", show_progress=False)
    two = train_diffusion(
        _config(autoencoder, 2, grad_accumulation=2), tmp_path / "b", show_progress=False
    )
    a = load_file(str(one.model_dir / "model.safetensors"))
    b = load_file(str(two.model_dir / "model.safetensors"))
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key


def test_ema_moves_towards_the_weights() -> None:
    net = torch.nn.Linear(2, 2)
    ema = EMA(net, decay=0.5, warmup=False)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)
    assert torch.allclose(ema.shadow_0, start + 0.5)
    copy = torch.nn.Linear(2, 2)
    ema.copy_to(copy)
    assert torch.allclose(copy.weight, start + 0.5)
    state = ema.averaged_state(net)  # the trained module's keys, the averaged values
    assert set(state) == set(net.state_dict()) and torch.equal(state["weight"], ema.shadow_0)
    assert not torch.equal(state["weight"], net.weight)


def _ddp_worker(rank: int, autoencoder: str, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    train_diffusion(_config(Path(autoencoder), 3), Path(out), show_progress=False)


@pytest.mark.slow
def test_two_process_ddp_keeps_replicas_identical(
    autoencoder: Path, tmp_path: Path, run_two_ranks: Callable[..., None]
) -> None:
    run_two_ranks(_ddp_worker, str(autoencoder), str(tmp_path / "ddp"))
    meta = json.loads((tmp_path / "ddp" / "model" / "config.json").read_text())
    checksums = meta["training"]["rank_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]  # replicas identical
    assert meta["training"]["steps"] == 3
    # Same global batch and per-sample randomness: one process reaches the same weights.
    single = train_diffusion(_config(autoencoder, 3), tmp_path / "one", show_progress=False)
    a = load_file(str(tmp_path / "ddp" / "model" / "model.safetensors"))
    b = load_file(str(single.model_dir / "model.safetensors"))
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
