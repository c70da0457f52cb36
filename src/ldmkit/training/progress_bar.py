"""A rich progress bar for training loops that shows the latest logged losses."""

from types import TracebackType
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class TrainingProgress:
    """Context manager: `update(step, logs)` moves the bar and shows a few scalars."""

    def __init__(self, total: int, start: int = 0, enabled: bool = True, title: str = "training"):
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            disable=not enabled,
        )
        self.task = self.progress.add_task(title, total=total, completed=start, info="")

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

    def update(self, step: int, logs: dict[str, Any] | None = None) -> None:
        """Set the bar to `step`; show up to four scalars from `logs` when given."""
        if logs:
            info = " ".join(
                f"{k}={v:.4g}" for k, v in list(logs.items())[:4] if isinstance(v, float)
            )
            self.progress.update(self.task, completed=step, info=info)
        else:
            self.progress.update(self.task, completed=step)
