"""Shared by the diffusion-training tests: a tiny saved f=2 autoencoder, a two-rank gloo
launcher and the tiny run settings."""

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from torch.distributed import TCPStore

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


@pytest.fixture
def run_two_ranks() -> Callable[..., None]:
    """Runs `worker(rank, *args)` in two spawned processes that form one gloo group on the
    loopback interface (the worker sets RANK and LOCAL_RANK; the rest of the rendezvous is in
    the environment they start with, which this process gets back unchanged). A rank's
    exception fails the test, and so does a run still going after `timeout` seconds: each rank
    is then sent SIGABRT, so Python's fault handler prints its stack into the captured output.

    The rendezvous store is this process's own TCPStore on a port the system picks and this
    process holds throughout (the ranks join it as torchrun's agent store), so no other process
    can take the port between choosing and binding it."""

    def run(worker: Callable[..., None], *args: Any, timeout: float = 150.0) -> None:
        store = TCPStore("127.0.0.1", 0, 3, is_master=True, wait_for_workers=False)
        rendezvous = {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(store.port),
            "TORCHELASTIC_USE_AGENT_STORE": "True",  # join the store above, do not start one
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
                for process in ranks.processes:  # one at a time: stacks not interleaved
                    if process.is_alive():
                        os.kill(process.pid, signal.SIGABRT)
                        process.join(10)
                    if process.is_alive():
                        process.kill()
                pytest.fail(f"the two ranks hung for {timeout:.0f} s (their stacks are above)")
        del store

    return run


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
