"""A training run's folder kept safe: one writer at a time, no stale temporary files, and a resume
from the newest checkpoint that is intact, with every one skipped named and why.

- `run_lock(run_dir)`: a lock file (`RUN/.lock`: PID, host, start time) made with an atomic
  exclusive create. A second trainer on the same folder stops with a message naming the first;
  the lock of a run that died (its PID gone, or reused by another process) is taken over.
- `clean_stale(run_dir)`: the leftovers of writes that were killed (`.step-*.tmp-*` folders,
  `.NAME.tmp-*` files) are removed. A folder being replaced (a checkpoint, the final model) is
  renamed aside (`.NAME.old-*`) before its new copy moves in; when a kill came between the two
  renames, the complete old copy is moved back.
- `find_resume(run_dir)`: checkpoints newest first, each verified (`verify_checkpoint`: its files
  present, JSON readable, safetensors complete to their last byte, the step it records that of
  its name); the first intact one is used.
"""

import json
import os
import re
import shutil
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ldmkit.checkpoint import CheckpointError
from ldmkit.progress import notice
from ldmkit.training.checkpoints import check_resumable, checkpoint_root
from ldmkit.training.loop import LoopState
from ldmkit.training.runtime import restore_rng_state
from ldmkit.training.train_state import STATE_JSON, STATE_TENSORS, load_train_state

LOCK_FILE = ".lock"
CHECKPOINT_FILES = ("config.json", STATE_JSON, STATE_TENSORS)
_STEP = re.compile(r"^step-(\d+)$")
_TMP = re.compile(r"^\..+\.tmp-[0-9a-f]+$")
_OLD = re.compile(r"^\.(.+)\.old-[0-9a-f]+$")
# An unreadable lock younger than this may be one that another run is writing right now.
_FRESH_S = 30.0


class RunLocked(ValueError):
    """Another trainer is writing to the same run folder."""


@contextmanager
def run_lock(run_dir: Path, enabled: bool = True) -> Iterator[None]:
    """Hold `run_dir`'s lock while the block runs (only where `enabled`: the main rank)."""
    if not enabled:
        yield
        return
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    mine = _this_process()
    while True:
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(path)
            if _holds(holder, path):
                raise RunLocked(_locked_message(run_dir, holder)) from None
            notice(
                f"{run_dir}: taking over the lock of a run that is no longer running "
                f"({_describe(holder)})"
            )
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(handle, "w") as out:
            json.dump(mine, out)
        break
    try:
        yield
    finally:
        if _read_lock(path) == mine:
            path.unlink(missing_ok=True)


def clean_stale(run_dir: Path) -> list[str]:
    """Remove the leftovers of killed writes in `run_dir` and its checkpoints folder (and move
    back a checkpoint caught between the renames of its replacement); what was done, one line
    each."""
    done: list[str] = []
    root = checkpoint_root(run_dir)
    for folder in (Path(run_dir), root):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            old = _OLD.match(path.name)
            if old and not (folder / old.group(1)).exists():
                os.replace(path, folder / old.group(1))
                done.append(f"restored {old.group(1)} (its replacement was cut off)")
            elif old or _TMP.match(path.name):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                done.append(f"removed {path.name} (left by an interrupted write)")
    return done


@dataclass(frozen=True)
class Resume:
    """Where a run resumes: the newest intact checkpoint (None: none), and the newer ones
    skipped with the reason for each."""

    checkpoint: Path | None
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def step(self) -> int:
        """The step the checkpoint holds (0 without one)."""
        return 0 if self.checkpoint is None else checkpoint_step(self.checkpoint)

    def report(self) -> list[str]:
        """Lines for the person resuming: which checkpoint, and why newer ones were skipped."""
        lines = [f"skipped checkpoint {name}: {why}" for name, why in self.skipped]
        if self.checkpoint is not None:
            lines.append(f"resuming from step {self.step} ({self.checkpoint})")
        elif self.skipped:
            lines.append("no intact checkpoint: starting from step 0")
        return lines


def checkpoint_step(path: Path) -> int:
    """The step in a checkpoint folder's name (step-00000012 -> 12)."""
    found = _STEP.match(Path(path).name)
    if found is None:
        raise CheckpointError(f"{path} is not a checkpoint folder (step-NNNNNNNN)")
    return int(found.group(1))


def find_resume(run_dir: Path) -> Resume:
    """The newest intact checkpoint of `run_dir`, and the newer ones that are not."""
    root = checkpoint_root(run_dir)
    folders = [p for p in root.glob("step-*") if p.is_dir() and _STEP.match(p.name)]
    skipped: list[tuple[str, str]] = []
    for folder in sorted(folders, key=checkpoint_step, reverse=True):
        try:
            verify_checkpoint(folder)
        except CheckpointError as error:
            skipped.append((folder.name, str(error)))
            continue
        return Resume(folder, tuple(skipped))
    return Resume(None, tuple(skipped))


def verify_checkpoint(folder: Path) -> None:
    """Raise a CheckpointError naming the first problem of a training checkpoint: a file
    missing, JSON that does not parse, a safetensors file cut short or with a broken header,
    or a recorded step other than its name's."""
    for name in CHECKPOINT_FILES:
        if not (folder / name).is_file():
            raise CheckpointError(f"{name} is missing")
    for name in ("config.json", STATE_JSON):
        try:
            json.loads((folder / name).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CheckpointError(f"{name} is not readable JSON ({error})") from error
    info = json.loads((folder / STATE_JSON).read_text()).get("info", {})
    if info.get("step") != checkpoint_step(folder):
        raise CheckpointError(
            f"{STATE_JSON} records step {info.get('step')}, not {checkpoint_step(folder)}"
        )
    _verify_safetensors(folder / STATE_TENSORS)


def _verify_safetensors(path: Path) -> None:
    """The header parses and the file holds every byte it declares (the format: an 8-byte
    little-endian header length, the JSON header, then the tensors' bytes)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{path.name} is cut short ({size} bytes)")
        (length,) = struct.unpack("<Q", prefix)
        if length > size - 8:
            raise CheckpointError(f"{path.name} is cut short inside its header")
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CheckpointError(f"{path.name} has a broken header ({error})") from error
    if not isinstance(header, dict):
        raise CheckpointError(f"{path.name} has a broken header")
    ends = [
        entry["data_offsets"][1]
        for key, entry in header.items()
        if key != "__metadata__" and isinstance(entry, dict) and "data_offsets" in entry
    ]
    needed = 8 + length + max(ends, default=0)
    if size < needed:
        raise CheckpointError(f"{path.name} is cut short: {size} of {needed} bytes")


def _this_process() -> dict[str, Any]:
    pid = os.getpid()
    return {
        "pid": pid,
        "host": socket.gethostname(),
        "started": _start_time(pid),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused PID."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 else None


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _holds(holder: dict[str, Any] | None, path: Path) -> bool:
    """Whether the lock's writer may still be running."""
    if holder is None:  # being written now, or left half-written by a kill
        try:
            return time.time() - path.stat().st_mtime < _FRESH_S
        except FileNotFoundError:
            return False
    if holder.get("host") != socket.gethostname():
        return True  # another machine's process: it cannot be checked from here
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    started = holder.get("started")
    return started is None or _start_time(pid) in (None, started)


def _describe(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "an unreadable lock file"
    return f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')}"


def _locked_message(run_dir: Path, holder: dict[str, Any] | None) -> str:
    if holder is None:
        return (
            f"another ldmkit run is starting in {run_dir} (its lock file is being written); "
            "wait for it, or pass another --out"
        )
    where = _describe(holder)
    if holder.get("host") != socket.gethostname():
        return (
            f"another ldmkit run ({where}) holds {run_dir / LOCK_FILE}; wait for it or pass "
            "another --out. If no run is writing there any more, delete that file"
        )
    return (
        f"another ldmkit run ({where}) is writing to {run_dir}; wait for it to finish or pass "
        "another --out"
    )


def start_run(run_dir: Path, resume: bool) -> None:
    """Before a run writes (main process): the leftovers of killed writes cleaned, each said;
    without `resume` (--no-resume) the old checkpoints removed."""
    for line in clean_stale(run_dir):
        notice(f"{run_dir}: {line}")
    if not resume and checkpoint_root(run_dir).exists():
        shutil.rmtree(checkpoint_root(run_dir))


def resume_point(run_dir: Path, resume: bool, report: bool = True) -> Resume:
    """Where the run starts: the newest intact checkpoint when resuming (said, with those
    skipped), else nowhere."""
    start = find_resume(run_dir) if resume else Resume(None)
    if report:
        for line in start.report():
            notice(f"{run_dir}: {line}")
    return start


def restore(
    start: Resume,
    config: Any,
    sections: Sequence[str],
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    device: torch.device,
) -> LoopState:
    """The run's state at `start`: its modules, optimisers and RNG restored in place after the
    config `sections` are checked against the checkpoint's; a fresh state without one."""
    if start.checkpoint is None:
        return LoopState()
    check_resumable(start.checkpoint, config, sections)
    rng, info = load_train_state(start.checkpoint, modules, optimizers)
    restore_rng_state(rng, device)
    return LoopState.from_info(info)
