"""Two "nodes" on loopback, each a `torchrun` with its own node rank and one process, with
gradient accumulation: the weights equal one plain process's to 1e-5 (README: more than one
machine)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

# Three steps of the tiny class model at batch 4 on the shapes data.
TRAIN = [
    *("-m", "ldmkit", "train", "--preset", "tiny"),
    *("--set", "run.steps=3", "--set", "run.batch_size=4", "--set", "run.sample_every=0"),
    *("--set", "run.checkpoint_every=3", "--set", "data.size=16", "--set", "run.threads=1"),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_two_nodes_with_accumulation_equal_one_process(autoencoder: Path, tmp_path: Path) -> None:
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    port = _free_port()
    nodes = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "torch.distributed.run", "--nnodes", "2"),
                *("--nproc-per-node", "1", "--node-rank", str(rank)),
                *("--master-addr", "127.0.0.1", "--master-port", str(port)),
                *TRAIN,
                *("--autoencoder", str(autoencoder), "--out", str(tmp_path / "two")),
                *("--set", "run.grad_accumulation=2"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    for rank, node in enumerate(nodes):
        try:
            output, _ = node.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for other in nodes:
                other.kill()
            pytest.fail(f"node {rank} did not finish in 240 s")
        assert node.returncode == 0, f"node {rank}:\n{output[-3000:]}"
    meta = json.loads((tmp_path / "two" / "model" / "config.json").read_text())
    checksums = meta["training"]["rank_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]
    one = subprocess.run(
        [sys.executable, *TRAIN, "--autoencoder", str(autoencoder), "--out", str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    a = load_file(str(tmp_path / "two" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "one" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
