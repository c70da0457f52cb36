"""A progress bar for long loops (rich), quiet when stderr is not a terminal and CI is set."""

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import track

T = TypeVar("T")


def progress(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate over `items` with a progress bar named `description`."""
    yield from track(items, description=description, total=total, transient=True)


def notice(message: str) -> None:
    """One line for the person running this, on stderr (resumes, skipped files, take-overs)."""
    print(message, file=sys.stderr, flush=True)
