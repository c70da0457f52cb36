"""The run folder's lock (PID, host, start time), the clean-up of interrupted writes and the
search for the newest intact checkpoint (the whole runs are in tests/faults/)."""

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from ldmkit.training.run_folder import (
    LOCK_FILE,
    Resume,
    RunLocked,
    clean_stale,
    find_resume,
    run_lock,
)


def _lock(run: Path, **fields: object) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    path = run / LOCK_FILE
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": "then", **fields}
    path.write_text(json.dumps(holder))
    return path


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_the_lock_is_held_while_the_block_runs_and_removed_after(tmp_path: Path) -> None:
    with run_lock(tmp_path / "run"):
        holder = json.loads((tmp_path / "run" / LOCK_FILE).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        refused = rf"another ldmkit run \(pid {os.getpid()} on "
        with pytest.raises(RunLocked, match=refused), run_lock(tmp_path / "run"):
            pass
    assert not (tmp_path / "run" / LOCK_FILE).exists()
    with run_lock(tmp_path / "run", enabled=False):  # other ranks take no lock
        assert not (tmp_path / "run" / LOCK_FILE).exists()


def test_a_dead_or_reused_pid_is_taken_over(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _lock(tmp_path, pid=_dead_pid())
    with run_lock(tmp_path):
        pass
    assert "taking over the lock of a run that is no longer running" in capsys.readouterr().err
    _lock(tmp_path, started="0")  # this PID, but a process started at another time
    with run_lock(tmp_path):
        pass
    assert not (tmp_path / LOCK_FILE).exists()


def test_another_hosts_lock_and_a_fresh_unreadable_one_are_respected(tmp_path: Path) -> None:
    _lock(tmp_path, host="elsewhere")
    refused = r"on elsewhere.*If no run is writing there any more"
    with pytest.raises(RunLocked, match=refused), run_lock(tmp_path):
        pass
    (tmp_path / LOCK_FILE).write_text("")  # being written by a run starting now
    with pytest.raises(RunLocked, match="another ldmkit run is starting"), run_lock(tmp_path):
        pass
    old = time.time() - 3600  # left half-written an hour ago: stale
    os.utime(tmp_path / LOCK_FILE, (old, old))
    with run_lock(tmp_path):
        pass


def test_interrupted_writes_are_cleaned_and_a_cut_off_replacement_restored(
    tmp_path: Path,
) -> None:
    root = tmp_path / "checkpoints"
    (root / ".step-00000004.tmp-1a2b3c4d").mkdir(parents=True)
    (root / "step-00000002").mkdir()
    (root / ".step-00000002.old-0f0f0f0f").mkdir()  # replaced completely: a leftover
    (tmp_path / ".model.old-deadbeef").mkdir()  # the model folder, moved aside, never replaced
    (tmp_path / ".history.json.tmp-12345678").write_text("{")
    (tmp_path / "notes.tmp-1").write_text("not ours")
    done = clean_stale(tmp_path)
    assert sorted(p.name for p in root.iterdir()) == ["step-00000002"]
    assert (tmp_path / "model").is_dir() and "restored model" in " ".join(done)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "model", "notes.tmp-1"]
    assert len(done) == 4


def test_no_checkpoints_means_a_fresh_start(tmp_path: Path) -> None:
    assert find_resume(tmp_path) == Resume(None)
    assert Resume(None).report() == [] and Resume(None).step == 0
