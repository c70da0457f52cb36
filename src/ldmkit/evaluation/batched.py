"""What every held-out evaluation of a conditioned model shares: the first n items, a timed
loop of batched generation, and a grid of aligned rows (inputs, outputs, originals)."""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ldmkit.data.collate import collate
from ldmkit.progress import progress


def first_items(dataset: Dataset[dict[str, Any]], n: int) -> dict[str, Any]:
    """The first `n` items (fewer if the data is smaller) as one batch."""
    n = min(n, len(dataset))  # type: ignore[arg-type]
    if n < 1:
        raise ValueError("evaluation needs at least one image; pass --n >= 1")
    return collate([dataset[i] for i in range(n)])


def timed_batches(
    n: int, batch_size: int, title: str, generate: Callable[[slice, int], torch.Tensor]
) -> tuple[torch.Tensor, float]:
    """`generate(part, start)` over consecutive batches of the n items (start seeds the batch);
    the outputs concatenated on the CPU, and the seconds spent generating."""
    outputs, elapsed = [], 0.0
    for start in progress(range(0, n, batch_size), title):
        began = time.perf_counter()
        outputs.append(generate(slice(start, min(n, start + batch_size)), start).cpu())
        elapsed += time.perf_counter() - began
    return torch.cat(outputs), elapsed


def save_rows(path: Path, rows: list[torch.Tensor], k: int = 8) -> None:
    """A PNG of the first `k` images of each row (B, 3, H, W) in [-1, 1], one row each."""
    from ldmkit.training.visuals import image_grid

    k = min(k, len(rows[0]))
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(torch.cat([row[:k].cpu() for row in rows]), nrow=k).save(path)
