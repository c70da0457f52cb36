"""The training loop both trainers share: step counting, the non-finite guard, timing, logging,
snapshots, checkpoints and the time budget. A trainer supplies what one step does (forward,
backward, optimiser) and what its snapshots and checkpoints write; the loop decides when."""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldmkit.fault_points import fault_point
from ldmkit.training.progress_bar import TrainingProgress
from ldmkit.training.run_log import RunLog


class TrainingDiverged(RuntimeError):
    """Too many consecutive non-finite losses; the last good checkpoint is left intact."""


@dataclass
class TrainResult:
    """Where the trained model went and how the run went."""

    model_dir: Path
    step: int
    elapsed_s: float
    history: list[dict[str, Any]]


@dataclass
class LoopState:
    """Where a run stands; checkpointed (`as_info`) and restored on resume."""

    step: int = 0
    elapsed: float = 0.0  # seconds of training so far, across resumes
    skipped: int = 0  # steps skipped for a non-finite loss, in all
    history: list[dict[str, Any]] = field(default_factory=list)
    bad_steps: int = 0  # consecutive non-finite steps (not saved: a resume starts at 0)
    saved_step: int = -1  # the step whose checkpoint is on disk, so it is not written twice

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> "LoopState":
        """The state a checkpoint's train-state info recorded."""
        step = info["step"]
        return cls(step, info["elapsed_s"], info["skipped_steps"], info["history"], 0, step)

    def save_unless_saved(self, save: Callable[[int], None]) -> None:
        """`save(step)` unless this step's checkpoint was just written (or resumed from): a
        second write of it would only open a window in which a kill leaves it half replaced."""
        if self.saved_step != self.step:
            save(self.step)
            self.saved_step = self.step

    def as_info(self, at_step: int) -> dict[str, Any]:
        """What a checkpoint records of the run at `at_step`."""
        return {
            "step": at_step,
            "elapsed_s": self.elapsed,
            "skipped_steps": self.skipped,
            "history": self.history,
        }


@dataclass(frozen=True)
class Cadence:
    """When the loop logs, snapshots and saves (every N steps; 0 = never), and when it stops."""

    steps: int
    log_every: int
    snapshot_every: int
    checkpoint_every: int
    max_bad_steps: int
    max_minutes: float = 0.0  # 0 = no time budget


def run_steps(
    loader: Iterable[Any],
    state: LoopState,
    cadence: Cadence,
    train_step: Callable[[Any, int], dict[str, Any] | None],
    snapshot: Callable[[int], dict[str, Any] | None],
    save: Callable[[int], None],
    log: RunLog,
    bar: TrainingProgress,
) -> None:
    """Run `train_step(batch, step)` over the loader's batches, updating `state`.

    `train_step` returns the step's logs, or None when its loss was non-finite and it changed
    nothing (the step is counted and skipped; `max_bad_steps` in a row raise
    `TrainingDiverged`). Every `log_every` steps (and at the last) a row goes to the log and
    the bar; every `snapshot_every` steps `snapshot(step)` runs (values it returns are logged);
    every `checkpoint_every` steps `save(step)`; the loop ends with the loader or when
    `max_minutes` of training have passed. The final save (`state.save_unless_saved`) and
    snapshot are the trainer's."""
    started = time.perf_counter() - state.elapsed
    for batch in loader:
        logs = train_step(batch, state.step)
        if logs is None:
            state.bad_steps += 1
            state.skipped += 1
            if state.bad_steps >= cadence.max_bad_steps:
                raise TrainingDiverged(
                    f"{state.bad_steps} consecutive non-finite losses at step {state.step}; the "
                    "last good checkpoint is intact. Lower optim.lr or use run.precision=fp32."
                )
            state.step += 1
            continue
        state.bad_steps = 0
        state.step += 1
        step = state.step
        state.elapsed = time.perf_counter() - started
        if step % cadence.log_every == 0 or step == cadence.steps:
            row = {"step": step, "time_s": round(state.elapsed, 2), **logs}
            log.append({**row, "skipped_steps": state.skipped})
            bar.update(step, logs)
        else:
            bar.update(step)
        if cadence.snapshot_every and step % cadence.snapshot_every == 0:
            values = snapshot(step)
            if values:
                log.append({"step": step, "time_s": round(state.elapsed, 2), **values})
        if cadence.checkpoint_every and step % cadence.checkpoint_every == 0:
            state.save_unless_saved(save)
        fault_point("train-step")
        if cadence.max_minutes and state.elapsed >= 60 * cadence.max_minutes:
            break
