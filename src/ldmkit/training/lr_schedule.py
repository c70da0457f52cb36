"""Learning-rate multiplier as a pure function of the step (so resuming needs only the step)."""

import math
from typing import Literal


def lr_multiplier(
    step: int,
    total_steps: int,
    warmup_steps: int = 0,
    schedule: Literal["constant", "cosine"] = "constant",
    min_ratio: float = 0.0,
) -> float:
    """Linear warm-up over `warmup_steps`, then constant or cosine decay to `min_ratio`."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
