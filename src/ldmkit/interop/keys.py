"""Helpers over a state dict's key names, shared by the checkpoint readers and writers."""

import re
from collections.abc import Iterable, Mapping

import torch


def indices(keys: Iterable[str], pattern: str) -> list[int]:
    """The distinct integers `pattern`'s first group matches in `keys`, sorted."""
    return sorted({int(m.group(1)) for key in keys if (m := re.match(pattern, key))})


def part(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix`, with it removed."""
    return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
