"""Training progress that shows the latest logged losses: a rich bar in a terminal, plain lines
elsewhere (`ldmkit.progress`), the time left from the step rate or the time budget, whichever
ends first."""

import time
from types import TracebackType
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from ldmkit.progress import (
    PLAIN_INTERVAL_S,
    PlainProgress,
    duration,
    interactive,
    remaining_seconds,
)


class TimeLeftColumn(ProgressColumn):
    """Time left at this run's step rate, or until `budget_s` ends if that is sooner."""

    def __init__(self, start: int, budget_s: float | None):
        super().__init__()
        self.start, self.budget_s, self.began = start, budget_s, time.monotonic()

    def render(self, task: Task) -> Text:
        elapsed = time.monotonic() - self.began
        total = None if task.total is None else int(task.total) - self.start
        left = remaining_seconds(int(task.completed) - self.start, total, elapsed, self.budget_s)
        return Text(
            "-:--" if left is None else f"{duration(left)} left", style="progress.remaining"
        )


class TrainingProgress:
    """Context manager: `update(step, logs)` moves the bar and shows a few scalars. `budget_s`:
    the seconds this run may still train (a `max_minutes` budget), for the time left."""

    def __init__(
        self,
        total: int,
        start: int = 0,
        enabled: bool = True,
        title: str = "training",
        budget_s: float | None = None,
        interval: float = PLAIN_INTERVAL_S,
    ):
        self.enabled = enabled
        self.plain = (
            PlainProgress(title, total, start, budget_s, interval)
            if enabled and not interactive()
            else None
        )
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeLeftColumn(start, budget_s),
            TextColumn("{task.fields[info]}"),
            disable=not enabled or self.plain is not None,
        )
        self.task = self.progress.add_task(title, total=total, completed=start, info="")
        self.step = start

    def __enter__(self) -> "TrainingProgress":
        self.progress.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.progress.__exit__(kind, error, trace)
        if self.plain is not None and kind is None:
            self.plain.update(self.step, force=True)

    def update(self, step: int, logs: dict[str, Any] | None = None) -> None:
        """Set the bar to `step`; show up to four scalars from `logs` when given."""
        self.step = step
        info = ""
        if logs:
            info = " ".join(
                f"{k}={v:.4g}" for k, v in list(logs.items())[:4] if isinstance(v, float)
            )
        if self.plain is not None:
            self.plain.update(step, info)
        if logs:
            self.progress.update(self.task, completed=step, info=info)
        else:
            self.progress.update(self.task, completed=step)
