"""Shared by the diffusion-training tests: a tiny saved f=2 autoencoder, a two-rank gloo
launcher and the tiny run settings."""

import os
import signal
import socket
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp

from ldmkit.autoencoder import Autoencoder, AutoencoderConfig
from ldmkit.checkpoint import save_autoencoder
from ldmkit.training.config import DiffusionRunConfig


@pytest.fixture(scope="session")
def autoencoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random KL autoencoder, f=2 with 3 latent channels, saved as a checkpoint folder."""
    torch.manual_seed(0)
    model = Autoencoder(
        AutoencoderConfig(model_channels=8, channel_mult=(1, 2), num_res_blocks=1, norm_groups=4)
    )
    return save_autoencoder(model, tmp_path_factory.mktemp("ae") / "model")


def _free_port() -> int:
    """A localhost port nothing listens on (for a torch.distributed rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def run_two_ranks() -> Callable[..., None]:
    """Runs `worker(rank, *args)` in two spawned processes that form one gloo group on the
    loopback interface (the worker sets RANK and LOCAL_RANK; the rest of the rendezvous is in
    the environment they start with, which this process gets back unchanged). A rank's
    exception fails the test. A run still going after `timeout` seconds does not hang the
    suite: each rank is sent SIGABRT, so Python's fault handler prints its stack into the
    captured output, and the run is tried once more on a new port with a warning; a second
    hang fails the test."""

    def run(worker: Callable[..., None], *args: Any, timeout: float = 150.0) -> None:
        for attempt in (1, 2):
            if _finished(worker, args, timeout):
                return
            if attempt == 1:
                warnings.warn(
                    f"two-rank run hung for {timeout:.0f} s (stacks in the captured stderr); "
                    "trying once more on a new port",
                    RuntimeWarning,
                    stacklevel=2,
                )
        pytest.fail(f"the two ranks hung twice, {timeout:.0f} s each (stacks above)")

    return run


def _finished(worker: Callable[..., None], args: tuple, timeout: float) -> bool:
    """Whether `worker` finished on both ranks within `timeout` seconds (else both are killed,
    after SIGABRT has made each print its stack)."""
    rendezvous = {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "WORLD_SIZE": "2",
        "GLOO_SOCKET_IFNAME": "lo",  # not whatever the host name resolves to
        "PYTHONFAULTHANDLER": "1",
    }
    with pytest.MonkeyPatch.context() as env:
        for name, value in rendezvous.items():
            env.setenv(name, value)
        ranks = mp.start_processes(worker, args, nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    while not ranks.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in ranks.processes:
                if process.is_alive():
                    os.kill(process.pid, signal.SIGABRT)
            for process in ranks.processes:
                process.join(10)
                if process.is_alive():
                    process.kill()
            return False
    return True


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
