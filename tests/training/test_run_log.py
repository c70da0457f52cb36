"""The run log: history rows, and TensorBoard scalars when asked for."""

from pathlib import Path

import pytest

from ldmkit.training.run_log import RunLog


def test_history_only_by_default(tmp_path: Path) -> None:
    history: list[dict] = []
    log = RunLog(history, tmp_path / "tb")
    log.append({"step": 1, "loss": 0.5, "note": "text is kept, not plotted"})
    log.close()
    assert history == [{"step": 1, "loss": 0.5, "note": "text is kept, not plotted"}]
    assert not (tmp_path / "tb").exists()


def test_tensorboard_scalars_round_trip(tmp_path: Path) -> None:
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    log = RunLog([], tmp_path / "tb", tensorboard=True)
    for step, loss in ((25, 0.9), (50, 0.4)):
        log.append({"step": step, "loss": loss, "lr": 1e-3, "skipped_steps": 0})
    log.close()
    events = accumulator.EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert {"loss", "lr", "skipped_steps"} <= set(events.Tags()["scalars"])
    loss = [(e.step, round(e.value, 4)) for e in events.Scalars("loss")]
    assert loss == [(25, 0.9), (50, 0.4)]
