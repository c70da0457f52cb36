"""Training on streamed shards (data.stream): an autoencoder and a latent diffusion model on
images read in sequence resume exactly; cached latents are encoded from the stream's shards."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from ldmkit.conditioning import ClassCondition
from ldmkit.data.config import DataConfig
from ldmkit.pipeline import DiffusionConfig
from ldmkit.training.autoencoder_trainer import train_autoencoder
from ldmkit.training.checkpoints import latest_checkpoint
from ldmkit.training.config import DiffusionRunConfig, DiffusionTrainConfig, OptimConfig
from ldmkit.training.diffusion_trainer import train_diffusion
from ldmkit.training.presets import PRESETS
from ldmkit.unet import unet_preset


def _data(shards: Path) -> DataConfig:
    return DataConfig(
        kind="shards",
        path=str(shards),
        resolution=16,
        stream=True,
        shuffle_buffer=6,
        interleave=2,
        random_crop=True,
    )


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_streamed_autoencoder_run_resumes_exactly(stream_shards: Path, tmp_path: Path) -> None:
    preset = PRESETS["tiny"]

    def config(steps: int, **data: Any) -> Any:
        run = dataclasses.replace(
            preset.run,
            steps=steps,
            batch_size=4,
            image_every=3,
            checkpoint_every=3,
            heldout_images=2,
            latent_stat_batches=1,
        )
        streamed = dataclasses.replace(_data(stream_shards), **data)
        return dataclasses.replace(preset, data=streamed, run=run)

    straight = train_autoencoder(config(6), tmp_path / "a", show_progress=False)
    train_autoencoder(config(3), tmp_path / "b", show_progress=False)
    # The shards moved (here: read through a pipe): the same bytes, so the run goes on exactly.
    moved = config(6, shard_url=f"pipe:cat {stream_shards}/{{shard}}")
    resumed = train_autoencoder(moved, tmp_path / "b", show_progress=False)
    _same(
        load_file(str(straight.model_dir / "model.safetensors")),
        load_file(str(resumed.model_dir / "model.safetensors")),
    )
    record = json.loads((tmp_path / "b" / "data.json").read_text())
    assert record["streams"] == {"processes": 1, "workers": 1}


def _diffusion(autoencoder: Path, shards: Path, steps: int, cache: bool) -> DiffusionTrainConfig:
    unet = unet_preset("tiny", context_dim=None, num_classes=3)
    return DiffusionTrainConfig(
        autoencoder=str(autoencoder),
        model=DiffusionConfig(
            unet=unet, conditioners=(ClassCondition(num_classes=2),), latent_size=8
        ),
        data=_data(shards),
        optim=OptimConfig(lr=1e-3, betas=(0.9, 0.999)),
        run=DiffusionRunConfig(
            steps=steps,
            batch_size=4,
            sample_every=3,
            checkpoint_every=3,
            sample_count=2,
            sample_steps=1,
            cache_latents=cache,
            store_latents=False,
        ),
    )


def test_a_streamed_diffusion_run_resumes_exactly(
    autoencoder: Path, stream_shards: Path, tmp_path: Path
) -> None:
    def train(steps: int, out: str) -> None:
        config = _diffusion(autoencoder, stream_shards, steps, cache=False)
        train_diffusion(config, tmp_path / out, show_progress=False)

    train(6, "a")
    train(3, "b")
    train(6, "b")
    _same(
        load_file(str(latest_checkpoint(tmp_path / "a") / "train_state.safetensors")),
        load_file(str(latest_checkpoint(tmp_path / "b") / "train_state.safetensors")),
    )
    assert json.loads((tmp_path / "b" / "data.json").read_text())["streams"]["processes"] == 1
    # With cached latents the shards are read once, in order, to encode them; steps read the
    # latents by index, so nothing is streamed per step.
    cached = _diffusion(autoencoder, stream_shards, 3, cache=True)
    result = train_diffusion(cached, tmp_path / "c", show_progress=False)
    assert result.step == 3
    assert "streams" not in json.loads((tmp_path / "c" / "data.json").read_text())


def _two_rank_worker(rank: int, autoencoder: str, shards: str, out: str, steps: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    config = _diffusion(Path(autoencoder), Path(shards), steps, cache=False)
    train_diffusion(config, Path(out), show_progress=False)


@pytest.mark.slow
def test_two_processes_stream_and_resume_exactly(
    autoencoder: Path, stream_shards: Path, tmp_path: Path, run_two_ranks: Callable[..., None]
) -> None:
    # Each process reads its own streams (its half of the shards) for its half of each batch.
    for steps, run in ((6, "straight"), (3, "resumed"), (6, "resumed")):
        run_two_ranks(
            _two_rank_worker, str(autoencoder), str(stream_shards), str(tmp_path / run), steps
        )
    for run in ("straight", "resumed"):
        meta = json.loads((tmp_path / run / "model" / "config.json").read_text())
        checksums = meta["training"]["rank_checksums"]
        assert len(checksums) == 2 and checksums[0] == checksums[1]
    _same(
        load_file(str(latest_checkpoint(tmp_path / "straight") / "train_state.safetensors")),
        load_file(str(latest_checkpoint(tmp_path / "resumed") / "train_state.safetensors")),
    )
    streams = json.loads((tmp_path / "resumed" / "data.json").read_text())["streams"]
    assert streams == {"processes": 2, "workers": 1}
    # Not the batches of one process: a stream per process, so another order of the images.
    one = train_diffusion(
        _diffusion(autoencoder, stream_shards, 6, cache=False),
        tmp_path / "one",
        show_progress=False,
    )
    a = load_file(str(one.model_dir / "model.safetensors"))
    b = load_file(str(tmp_path / "straight" / "model" / "model.safetensors"))
    assert any(not torch.allclose(a[key], b[key], atol=1e-5) for key in a)
