"""The shared training loop: when it logs, snapshots and saves, and how it skips non-finite
steps and gives up after too many in a row."""

from pathlib import Path
from typing import Any

import pytest

from ldmkit.training.loop import Cadence, LoopState, TrainingDiverged, run_steps
from ldmkit.training.progress_bar import TrainingProgress
from ldmkit.training.run_log import RunLog


def _run(tmp_path: Path, losses: list[float | None], state: LoopState, **cadence: Any) -> dict:
    calls: dict[str, list[int]] = {"steps": [], "snapshots": [], "saves": []}

    def train_step(batch: float | None, step: int) -> dict[str, Any] | None:
        calls["steps"].append(step)
        return None if batch is None else {"loss": batch}

    def snapshot(step: int) -> dict[str, Any]:
        calls["snapshots"].append(step)
        return {"val": float(step)}

    settings = {"log_every": 2, "snapshot_every": 3, "checkpoint_every": 4, "max_bad_steps": 2}
    settings.update(cadence)
    run_steps(
        losses,
        state,
        Cadence(steps=state.step + len(losses), **settings),
        train_step,
        snapshot,
        calls["saves"].append,
        RunLog(state.history, tmp_path),
        TrainingProgress(100, state.step, enabled=False),
    )
    return calls


def test_cadence_of_logs_snapshots_and_saves(tmp_path: Path) -> None:
    state = LoopState()
    calls = _run(tmp_path, [0.5, 0.4, 0.3, 0.2, 0.1], state)
    assert calls["steps"] == [0, 1, 2, 3, 4] and state.step == 5
    assert calls["snapshots"] == [3] and calls["saves"] == [4]
    rows = [(row["step"], "loss" in row, "val" in row) for row in state.history]
    assert rows == [(2, True, False), (3, False, True), (4, True, False), (5, True, False)]
    assert state.history[0]["skipped_steps"] == 0 and state.elapsed > 0
    resumed = LoopState.from_info(state.as_info(state.step))  # what a checkpoint restores
    assert (resumed.step, resumed.skipped, resumed.history) == (5, 0, state.history)


def test_non_finite_steps_are_counted_skipped_and_end_the_run_when_in_a_row(
    tmp_path: Path,
) -> None:
    state = LoopState()
    _run(tmp_path, [0.5, None, 0.4, None, 0.3], state)  # never two in a row
    assert state.step == 5 and state.skipped == 2 and state.bad_steps == 0
    assert state.history[-1]["skipped_steps"] == 2
    state = LoopState()
    with pytest.raises(TrainingDiverged, match="2 consecutive non-finite losses at step 3"):
        _run(tmp_path, [0.5, 0.4, None, None, 0.3], state)
    assert state.step == 3 and state.skipped == 2  # bad steps 2 and 3; the run ends at 3
