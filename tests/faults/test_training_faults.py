"""Fault injection on training runs: killed processes (at a step, inside a checkpoint write,
between the renames of a replacement), damaged checkpoints, a full disk and a second writer.
Each case ends in a clear error or in an exact resume, never in a traceback, silently wrong
weights or the loss of what was saved before. Runs are a tiny autoencoder (6 steps, a checkpoint
every 2, the last 2 kept), in a subprocess where the process must die."""

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import ldmkit.checkpoint
from ldmkit.checkpoint import CheckpointError
from ldmkit.cli import app
from ldmkit.fault_points import ENV, KILLED

pytestmark = pytest.mark.slow  # trainings in subprocesses: `make test`, not `make test-fast`

STEPS = 6
SETTINGS = [
    "--preset",
    "tiny",
    "--set",
    f"run.steps={STEPS}",
    "--set",
    "run.checkpoint_every=2",
    "--set",
    "run.image_every=4",
    "--set",
    "run.log_every=2",
    "--set",
    "run.heldout_images=4",
    "--set",
    "run.latent_stat_batches=2",
    "--set",
    "data.size=64",
]


def train(out: Path, *extra: str, die_at: str | None = None) -> subprocess.CompletedProcess:
    """`ldmkit train-autoencoder` of the tiny run into `out`, in a fresh process."""
    env = {**os.environ, "CI": "true"}
    env.pop(ENV, None)
    if die_at is not None:
        env[ENV] = die_at
    command = [sys.executable, "-m", "ldmkit", "train-autoencoder", *SETTINGS, "--out", str(out)]
    return subprocess.run(
        [*command, *extra], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


def assert_same_weights(run: Path, reference: Path) -> None:
    ours, theirs = weights(run), weights(reference)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run every faulted one must end equal to."""
    out = tmp_path_factory.mktemp("reference") / "run"
    done = train(out)
    assert done.returncode == 0, done.stderr
    return out


def checkpoints(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


@pytest.mark.parametrize(
    ("die_at", "resumed_from"),
    [("train-step:3", 2), ("train-step:5", 4), ("checkpoint-written:2", 2)],
)
def test_a_kill_mid_run_or_mid_write_resumes_exactly(
    reference: Path, tmp_path: Path, die_at: str, resumed_from: int
) -> None:
    run = tmp_path / "run"
    killed = train(run, die_at=die_at)
    assert killed.returncode == KILLED, killed.stderr
    if die_at.startswith("checkpoint-written"):  # the half-written checkpoint is under a tmp name
        assert any(".tmp-" in name for name in checkpoints(run))
    again = train(run)
    assert again.returncode == 0, again.stderr
    assert f"resuming from step {resumed_from}" in again.stderr
    assert not any(".tmp-" in name for name in checkpoints(run))
    assert_same_weights(run, reference)


def test_a_kill_between_the_renames_of_a_replacement_loses_nothing(
    reference: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    # A rerun of the finished run rewrites its model folder: killed after moving the old one
    # aside, before moving the new one in.
    killed = train(run, die_at="checkpoint-between-renames")
    assert killed.returncode == KILLED, killed.stderr
    assert not (run / "model").exists() and any(".model.old-" in p.name for p in run.iterdir())
    again = train(run)
    assert again.returncode == 0, again.stderr
    assert "restored model (its replacement was cut off)" in again.stderr
    assert f"resuming from step {STEPS}" in again.stderr
    assert_same_weights(run, reference)


def _truncate(path: Path, size: int) -> None:
    with path.open("r+b") as handle:
        handle.truncate(size)


DAMAGE = {
    "weights cut in half": lambda c: _truncate(
        c / "train_state.safetensors", (c / "train_state.safetensors").stat().st_size // 2
    ),
    "weights cut to 5 bytes": lambda c: _truncate(c / "train_state.safetensors", 5),
    "weights header garbled": lambda c: (c / "train_state.safetensors").write_bytes(
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all" + b"\x00" * 64
    ),
    "state json missing": lambda c: (c / "train_state.json").unlink(),
    "state json garbled": lambda c: (c / "train_state.json").write_text('{"info": {'),
    "config json garbled": lambda c: (c / "config.json").write_bytes(b"\xff\xfe"),
    "folder deleted (pointer dangling)": lambda c: shutil.rmtree(c),
}
REASONS = {
    "weights cut in half": "is cut short",
    "weights cut to 5 bytes": "is cut short",
    "weights header garbled": "broken header",
    "state json missing": "train_state.json is missing",
    "state json garbled": "train_state.json is not readable JSON",
    "config json garbled": "config.json is not readable JSON",
    "folder deleted (pointer dangling)": "",
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(
    reference: Path, tmp_path: Path, damage: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    shutil.rmtree(run / "model")
    newest = run / "checkpoints" / f"step-{STEPS:08d}"
    DAMAGE[damage](newest)
    again = train(run)
    assert again.returncode == 0, again.stderr
    assert f"resuming from step {STEPS - 2}" in again.stderr  # not from 0
    if REASONS[damage]:
        assert f"skipped checkpoint step-{STEPS:08d}: " in again.stderr
        assert REASONS[damage] in again.stderr
    assert "Traceback" not in again.stderr
    assert_same_weights(run, reference)


def test_every_checkpoint_damaged_starts_over_and_says_so(reference: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    for folder in (run / "checkpoints").glob("step-*"):
        (folder / "train_state.json").unlink()
    again = train(run)
    assert again.returncode == 0, again.stderr
    assert "no intact checkpoint: starting from step 0" in again.stderr
    assert_same_weights(run, reference)


def test_a_full_disk_stops_with_a_clear_error_and_keeps_the_last_checkpoint(
    reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = ldmkit.checkpoint.save_file
    calls = {"n": 0}

    def fills_up(tensors: dict, path: str, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint (step 4) meets a full disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(tensors, path, *args, **kwargs)

    monkeypatch.setattr(ldmkit.checkpoint, "save_file", fills_up)
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train-autoencoder", *SETTINGS, "--out", str(run)])
    assert result.exit_code == 2, result.output
    assert "No space left on device" in result.output
    assert "anything saved there before is intact" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert checkpoints(run) == ["latest.json", "step-00000002"]  # no half-written step 4
    monkeypatch.setattr(ldmkit.checkpoint, "save_file", original)
    again = train(run)
    assert again.returncode == 0 and "resuming from step 2" in again.stderr
    assert_same_weights(run, reference)


def test_a_second_trainer_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "CI": "true"}
    command = [sys.executable, "-m", "ldmkit", "train-autoencoder", *SETTINGS, "--out", str(run)]
    first = subprocess.Popen(
        [*command, "--set", "run.steps=100000"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = run / ".lock"
        for _ in range(600):
            if lock.is_file() and lock.read_text():
                break
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            subprocess.run(["sleep", "0.1"], check=True)
        second = train(run)
        assert second.returncode == 2, second.stderr
        assert f"another ldmkit run (pid {first.pid} on " in second.stderr
        assert "wait for it to finish or pass another --out" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.kill()
        first.wait()
    # Its lock outlives it; the next run sees the PID is gone and takes over.
    third = train(run, "--no-resume")
    assert third.returncode == 0, third.stderr
    assert "taking over the lock of a run that is no longer running" in third.stderr
    assert not (run / ".lock").exists()


def test_checkpoint_errors_name_the_file(tmp_path: Path) -> None:
    from ldmkit.training.run_folder import verify_checkpoint

    folder = tmp_path / "step-00000002"
    folder.mkdir()
    with pytest.raises(CheckpointError, match=r"config\.json is missing"):
        verify_checkpoint(folder)


def _mount_small_disk(where: Path, megabytes: int) -> bool:
    """A size-limited tmpfs at `where` (root on Linux only); False where that is not allowed."""
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    return made.returncode == 0


def test_a_really_full_disk_stops_cleanly_and_the_run_resumes_elsewhere(
    reference: Path, tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    # One training checkpoint of this run is about 11 MB: the first fits, the second does not.
    if not _mount_small_disk(disk, 16):
        pytest.skip("mounting a size-limited tmpfs needs root on Linux")
    try:
        full = train(disk / "run")
        assert full.returncode == 2, full.stderr
        assert "No space left on device" in full.stderr and "Traceback" not in full.stderr
        assert checkpoints(disk / "run") == ["latest.json", "step-00000002"]
        shutil.copytree(disk / "run", tmp_path / "run")
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    again = train(tmp_path / "run")
    assert again.returncode == 0 and "resuming from step 2" in again.stderr, again.stderr
    assert_same_weights(tmp_path / "run", reference)


def test_sigkills_at_random_moments_still_end_in_the_same_weights(
    reference: Path, tmp_path: Path
) -> None:
    rng = random.Random(7)
    run = tmp_path / "run"
    env = {**os.environ, "CI": "true"}
    env.pop(ENV, None)
    command = [sys.executable, "-m", "ldmkit", "train-autoencoder", *SETTINGS, "--out", str(run)]
    kills = 0
    for _ in range(8):
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            process.wait(timeout=rng.uniform(2.0, 6.0))  # start-up is ~2 s, the run ~3 more
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            continue
        assert process.returncode == 0
        break
    else:
        assert train(run).returncode == 0
    assert kills >= 1  # at least one kill landed mid-run
    assert_same_weights(run, reference)


def test_a_streamed_run_killed_mid_epoch_resumes_exactly(
    stream_shards: Path, tmp_path: Path
) -> None:
    # Shards read in sequence by two loader workers, a pipe between them and the files; the
    # process (workers and pipes with it) dies at step 3 of 6, inside the first pass.
    streamed = ["--data", f"shards:{stream_shards}", "--set", "data.resolution=16"]
    streamed += [
        "--set",
        "data.stream=true",
        "--set",
        f"data.shard_url=pipe:cat {stream_shards}/{{shard}}",
    ]
    streamed += ["--set", "data.shuffle_buffer=6", "--set", "data.interleave=2"]
    streamed += ["--set", "run.num_workers=2", "--set", "run.batch_size=4"]
    done = train(tmp_path / "reference", *streamed)
    assert done.returncode == 0, done.stderr
    killed = train(tmp_path / "run", *streamed, die_at="train-step:3")
    assert killed.returncode == KILLED, killed.stderr
    again = train(tmp_path / "run", *streamed)
    assert again.returncode == 0, again.stderr
    assert "resuming from step 2" in again.stderr
    assert_same_weights(tmp_path / "run", tmp_path / "reference")
