"""The held-out split of a folder: a fixed fraction of files, chosen by a hash of their names.

A file's side depends only on its relative path and the seed, so adding or removing other files
never moves it: a model trained on a folder is scored on images it did not see, also after the
folder grows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

Split = Literal["train", "heldout", "all"]


def heldout_draw(name: str, seed: int) -> float:
    """A number in [0, 1) fixed by (seed, name); the file is held out when it is below the
    fraction."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def heldout_mask(names: Sequence[str], fraction: float, seed: int) -> list[bool]:
    """Which of `names` (relative paths) are held out: those whose draw is below `fraction`;
    with `fraction` > 0 and two files or more, at least one on each side."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"data.heldout_fraction must be in [0, 1), got {fraction}")
    if len(names) < 2:
        return [False] * len(names)  # one image: nothing to hold out
    draws = [heldout_draw(name, seed) for name in names]
    mask = [draw < fraction for draw in draws]
    if fraction > 0:
        if not any(mask):
            mask[min(range(len(draws)), key=draws.__getitem__)] = True
        if all(mask):
            mask[max(range(len(draws)), key=draws.__getitem__)] = False
    return mask


def split_indices(names: Sequence[str], split: Split, fraction: float, seed: int) -> list[int]:
    """Positions of `names` on side `split` ("all": every position)."""
    if split == "all":
        return list(range(len(names)))
    mask = heldout_mask(names, fraction, seed)
    keep = split == "heldout"
    chosen = [i for i, held in enumerate(mask) if held == keep]
    if split == "heldout" and not chosen:
        raise ValueError(
            f"no held-out images: data.heldout_fraction is {fraction} over {len(names)} "
            "image(s); set --set data.heldout_fraction=0.05 (and give at least 2 images)"
        )
    return chosen
