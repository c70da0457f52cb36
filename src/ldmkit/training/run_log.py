"""The run's scalar log: `history.json` rows, mirrored to TensorBoard when asked for."""

from pathlib import Path
from typing import Any


class RunLog:
    """Appends rows `{"step": s, name: value, ...}` to `history`; with `tensorboard`, also writes
    each numeric value as a scalar to an event file under `log_dir` (`tensorboard --logdir`)."""

    def __init__(self, history: list[dict[str, Any]], log_dir: Path, tensorboard: bool = False):
        self.history = history
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:  # torch imports the `tensorboard` package lazily
                raise RuntimeError(
                    "run.tensorboard=true needs the tensorboard package: "
                    "pip install 'ldmkit[tensorboard]' (or set run.tensorboard=false)"
                ) from error
            self.writer = SummaryWriter(str(log_dir))

    def append(self, row: dict[str, Any]) -> None:
        """Record one row; `row["step"]` is the x axis in TensorBoard."""
        self.history.append(row)
        if self.writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, int | float):
                    self.writer.add_scalar(key, value, row["step"])

    def close(self) -> None:
        """Flush and close the event file."""
        if self.writer is not None:
            self.writer.close()
