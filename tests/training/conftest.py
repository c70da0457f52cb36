"""Shared by the diffusion-training tests: a tiny saved f=2 autoencoder and a free TCP port."""

import socket
from pathlib import Path

import pytest
import torch

from ldmkit.autoencoder import Autoencoder, AutoencoderConfig
from ldmkit.checkpoint import save_autoencoder


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
