"""Helpers over a state dict's key names and values, shared by the checkpoint readers and
writers."""

import re
from collections.abc import Iterable, Mapping

import torch


def indices(keys: Iterable[str], pattern: str) -> list[int]:
    """The distinct integers `pattern`'s first group matches in `keys`, sorted."""
    return sorted({int(m.group(1)) for key in keys if (m := re.match(pattern, key))})


def part(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix`, with it removed."""
    return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}


def as_written(value: float | torch.Tensor) -> float:
    """A float32 value as the shortest decimal that rounds to it (7 significant digits), as
    configs write it: 0.00085, not 0.0008500000112690032."""
    return float(f"{float(value):.7g}")
