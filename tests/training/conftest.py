"""Shared by the diffusion-training tests: a tiny saved f=2 autoencoder, a free TCP port and
the tiny run settings."""

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from ldmkit.autoencoder import Autoencoder, AutoencoderConfig
from ldmkit.checkpoint import save_autoencoder
from ldmkit.training.config import DiffusionRunConfig


@pytest.fixture(scope="session")
def autoencoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random KL autoencoder, f=2 with 3 latent channels, saved as a checkpoint folder."""
    torch.manual_seed(0)
    model = Autoencoder(AutoencoderConfig(ch=8, ch_mult=(1, 2), num_res_blocks=1, norm_groups=4))
    return save_autoencoder(model, tmp_path_factory.mktemp("ae") / "model")


@pytest.fixture
def free_port() -> int:
    """A localhost port nothing listens on (for a torch.distributed rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def tiny_run() -> Callable[..., DiffusionRunConfig]:
    """Run settings for training tests: two steps at batch 4 with a checkpoint and a snapshot of
    two one-step samples at step 2; keyword arguments replace any of them."""

    def make(**overrides: Any) -> DiffusionRunConfig:
        base: dict[str, Any] = dict(
            steps=2,
            batch_size=4,
            sample_count=2,
            sample_steps=1,
            sample_every=2,
            checkpoint_every=2,
        )
        return DiffusionRunConfig(**(base | overrides))

    return make
