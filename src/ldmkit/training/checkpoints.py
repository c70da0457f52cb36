"""Rotating training checkpoints under RUN/checkpoints with an atomic `latest` pointer."""

import shutil
from collections.abc import Callable
from pathlib import Path

from ldmkit.checkpoint import write_directory_atomically, write_json

POINTER = "latest.json"


def checkpoint_root(run_dir: Path) -> Path:
    """Folder holding a run's training checkpoints."""
    return Path(run_dir) / "checkpoints"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    import json

    pointer = checkpoint_root(run_dir) / POINTER
    if not pointer.is_file():
        return None
    path = checkpoint_root(run_dir) / json.loads(pointer.read_text())["latest"]
    return path if path.is_dir() else None


def write_checkpoint(run_dir: Path, step: int, write: Callable[[Path], None], keep: int) -> Path:
    """Write checkpoint `step` atomically, move the pointer to it, and prune old ones."""
    root = checkpoint_root(run_dir)
    target = write_directory_atomically(root / f"step-{step:08d}", write)
    write_json(root / POINTER, {"latest": target.name, "step": step})
    existing = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in existing[: max(0, len(existing) - keep)]:
        if old != target:
            shutil.rmtree(old)
    return target
