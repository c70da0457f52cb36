"""Progress away from a terminal: plain lines with the rate and the time left, the time left
bounded by a time budget, and a training bar that does the same."""

import pytest

from ldmkit import progress as p
from ldmkit.training.progress_bar import TrainingProgress


def test_time_left_is_the_sooner_of_the_rate_and_the_budget() -> None:
    assert p.remaining_seconds(10, 100, 20.0) == 180.0  # 2 s per item, 90 to go
    assert p.remaining_seconds(10, 100, 20.0, budget_s=60.0) == 40.0  # the budget ends first
    assert p.remaining_seconds(0, 100, 5.0) is None
    assert p.remaining_seconds(0, None, 5.0, budget_s=65.0) == 60.0
    assert [p.duration(s) for s in (12, 185, 3723)] == ["12 s", "3:05", "1:02:03"]
    line = p.progress_line("ldm", 120, 1000, 40.0, info="loss=0.03", start=100)
    assert line == "ldm: 120/1000 (12%), 0.5/s, 29:20 left, loss=0.03"  # 880 at 0.5/s


def test_loops_print_lines_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(p, "interactive", lambda: False)
    assert list(p.progress(range(5), "encoding", interval=0.0)) == [0, 1, 2, 3, 4]
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("encoding: 1/5 (20%)") and lines[-1].startswith("encoding: 5/5")
    assert len(lines) == 6  # one per item at interval 0, and the last again at the end
    quiet = list(p.progress(range(3), "quiet", interval=3600.0))
    (line,) = capsys.readouterr().err.splitlines()  # only the end, within the interval
    assert quiet == [0, 1, 2] and line.startswith("quiet: 3/3 (100%)")


def test_training_progress_prints_losses_and_the_budgets_time_left(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ldmkit.training.progress_bar.interactive", lambda: False)
    with TrainingProgress(1000, start=100, title="ldm", budget_s=30.0, interval=0.0) as bar:
        bar.update(101, {"loss": 0.25, "lr": 1e-4})
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("ldm: 101/1000 (10%)") and "loss=0.25 lr=0.0001" in lines[0]
    left = lines[0].split(", ")[2]
    assert left.endswith(" s left") and int(left.split()[0]) <= 30  # the budget, not 899 steps
    assert lines[-1].startswith("ldm: 101/1000")  # and a last line at the end
