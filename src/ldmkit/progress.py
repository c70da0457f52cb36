"""Progress for long loops: a rich bar in a terminal; elsewhere (a log file, CI, a pipe) one plain
line on stderr every `PLAIN_INTERVAL_S` seconds and one at the end, each with the rate and the
time left (from the rate, or a time budget's end if that comes first)."""

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import track

T = TypeVar("T")

PLAIN_INTERVAL_S = 30.0


def interactive() -> bool:
    """Whether stderr is a terminal (a bar redraws there; elsewhere lines are printed)."""
    return sys.stderr.isatty()


def remaining_seconds(
    done: int, total: int | None, elapsed: float, budget_s: float | None = None
) -> float | None:
    """Seconds left: at the rate so far until `total`, or until the `budget_s` (counted from the
    same start as `elapsed`) runs out, whichever is sooner; None when neither is known."""
    estimates = []
    if total and done > 0:
        estimates.append(max(0.0, (total - done) * elapsed / done))
    if budget_s:
        estimates.append(max(0.0, budget_s - elapsed))
    return min(estimates) if estimates else None


def duration(seconds: float) -> str:
    """12 s, 3:05, 1:02:03."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def progress_line(
    description: str,
    done: int,
    total: int | None,
    elapsed: float,
    budget_s: float | None = None,
    info: str = "",
    start: int = 0,
) -> str:
    """ "ldm: 120/1000 (12%), 3.1/s, 4:44 left, loss=0.0312": the rate and time left count the
    items since `start` (where a resumed run began) over `elapsed`."""
    if total:
        parts = [f"{description}: {done}/{total} ({100 * done / total:.0f}%)"]
    else:
        parts = [f"{description}: {done}"]
    if elapsed > 0:
        parts.append(f"{(done - start) / elapsed:.3g}/s")
    left = remaining_seconds(
        done - start, None if total is None else total - start, elapsed, budget_s
    )
    if left is not None and (total is None or done < total):
        parts.append(f"{duration(left)} left")
    if info:
        parts.append(info)
    return ", ".join(parts)


class PlainProgress:
    """Prints `progress_line`s to stderr: at most one per `interval` seconds, and when forced."""

    def __init__(
        self,
        description: str,
        total: int | None,
        start: int = 0,
        budget_s: float | None = None,
        interval: float = PLAIN_INTERVAL_S,
    ):
        self.description, self.total, self.start = description, total, start
        self.budget_s, self.interval = budget_s, interval
        self.began = self.last = time.monotonic()

    def update(self, done: int, info: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.interval:
            self.last = now
            line = progress_line(
                self.description,
                done,
                self.total,
                now - self.began,
                self.budget_s,
                info,
                self.start,
            )
            print(line, file=sys.stderr, flush=True)


def progress(
    items: Iterable[T], description: str, total: int | None = None, interval: float | None = None
) -> Iterator[T]:
    """Iterate over `items` with a progress bar named `description` (plain lines when stderr is
    not a terminal, every `interval` seconds)."""
    if interactive():
        yield from track(items, description=description, total=total, transient=True)
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    plain = PlainProgress(
        description, total, interval=PLAIN_INTERVAL_S if interval is None else interval
    )
    done = 0
    for item in items:
        yield item
        done += 1
        plain.update(done)
    plain.update(done, force=True)


def notice(message: str) -> None:
    """One line for the person running this, on stderr (resumes, skipped files, take-overs)."""
    print(message, file=sys.stderr, flush=True)
