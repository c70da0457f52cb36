"""Rotating training checkpoints under RUN/checkpoints with an atomic `latest` pointer."""

import dataclasses
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ldmkit.checkpoint import write_directory_atomically, write_json
from ldmkit.config import from_dict, to_dict

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


def check_resumable(checkpoint: Path, config: Any, sections: Sequence[str]) -> None:
    """Refuse to resume from `checkpoint` a run whose `sections` of its saved config (e.g.
    model, data) differ from `config`'s. Each saved section is read back through its dataclass,
    so fields added since the run began take their defaults instead of counting as changes
    and keys renamed since are read as the config's `upgrade_config` says; an unreadable
    section counts as changed. The error names the sections and the fix."""
    saved = json.loads((checkpoint / "config.json").read_text())
    upgrade = getattr(type(config), "upgrade_config", None)
    if upgrade is not None:  # an older run's keys, as the config has them now
        saved = upgrade(saved)
    changed = [
        name
        for name in sections
        # A section the run's config predates counts as its default (e.g. no `lora`: none).
        if not _same(
            saved[name] if name in saved else _default(config, name), getattr(config, name)
        )
    ]
    if changed:
        raise ValueError(
            f"{checkpoint} belongs to a run with a different {', '.join(changed)} config; "
            "pass --no-resume to start over, or another --out folder"
        )


def _default(config: Any, name: str) -> Any:
    """The default of `config`'s field `name`, as its saved form (a dict for a dataclass)."""
    field = {f.name: f for f in dataclasses.fields(config)}[name]
    if field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        value = field.default
    return to_dict(value) if dataclasses.is_dataclass(value) else value


def _same(saved: Any, current: Any) -> bool:
    if not dataclasses.is_dataclass(current):  # a plain value (a fine-tune's `init` path)
        return bool(saved == current)
    try:
        loaded = from_dict(type(current), saved)
    except (TypeError, ValueError):  # ConfigError is a ValueError
        return False
    # Fields that say where or how the same things are read (the shards moved to a bucket),
    # not what is read: a run may resume with them changed.
    ignored = getattr(type(current), "RESUME_IGNORES", ())
    compared = [f.name for f in dataclasses.fields(current) if f.name not in ignored]
    return all(getattr(loaded, name) == getattr(current, name) for name in compared)
