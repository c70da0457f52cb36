"""One entry point that prepares any of the real datasets ldmkit can build from local packages."""

from __future__ import annotations

from pathlib import Path

from ldmkit.data.emoji import prepare_emoji
from ldmkit.data.fashion_mnist import prepare_fashion_mnist

DATASETS: tuple[str, ...] = ("fashion-mnist", "emoji")


def prepare_dataset(name: str, out_dir: str | Path) -> Path:
    """Prepare dataset `name` (one of DATASETS) into `out_dir`; returns the dataset folder."""
    match name:
        case "fashion-mnist":
            return prepare_fashion_mnist(Path(out_dir))
        case "emoji":
            return prepare_emoji(Path(out_dir))
        case _:
            raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}.")
