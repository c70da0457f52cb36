"""What every held-out evaluation of a conditioned model shares: the first n items, a timed
loop of batched generation, and a grid of aligned rows (inputs, outputs, originals)."""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ldmkit.data.collate import collate
from ldmkit.pipeline import LatentDiffusion
from ldmkit.progress import progress
from ldmkit.samplers import SamplingOptions

# Evaluations sample with guidance 3 unless told otherwise; those of a spatial condition (maps,
# low-resolution images, holes) without guidance.
EVALUATION_OPTIONS = SamplingOptions(guidance=3.0)
SPATIAL_OPTIONS = SamplingOptions(guidance=1.0)


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


def sample_batches(
    model: LatentDiffusion,
    n: int,
    options: SamplingOptions,
    batch_size: int,
    title: str,
    **inputs: Any,
) -> tuple[torch.Tensor, float]:
    """`n` samples on the CPU in batches, and the seconds spent: the batch from `start` takes
    each of `inputs` (labels, prompts, layouts, condition: n values each) sliced alike and
    noise seeds `options.seed + start`, so the result does not depend on `batch_size`."""

    def generate(part: slice, start: int) -> torch.Tensor:
        given = {name: values[part] for name, values in inputs.items() if values is not None}
        count = part.stop - part.start
        return model.sample(count, options=options.replace(seed=options.seed + start), **given)

    return timed_batches(n, batch_size, title, generate)


def options_record(options: SamplingOptions) -> dict[str, Any]:
    """What a report records of how it sampled (`options` resolved by the model)."""
    return {
        "guidance": options.guidance,
        "guidance_rescale": options.guidance_rescale,
        "sampler": options.sampler,
        "steps": options.steps,
        "compile": options.compile,
        "sampling_precision": options.precision,
    }


def save_rows(path: Path, rows: list[torch.Tensor], k: int = 8) -> None:
    """A PNG of the first `k` images of each row (B, 3, H, W) in [-1, 1], one row each."""
    from ldmkit.images import image_grid

    k = min(k, len(rows[0]))
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(torch.cat([row[:k].cpu() for row in rows]), nrow=k).save(path)
