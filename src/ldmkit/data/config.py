"""Typed description of a training or evaluation dataset."""

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, at which resolution; `path` is for folder-backed kinds."""

    kind: Literal["shapes", "folder", "fashion-mnist", "emoji"] = "shapes"
    resolution: int = 64
    path: str = ""
    # shapes: number of distinct training images (the held-out split uses another seed).
    size: int = 20000
    seed: int = 0
    single_object: bool = False
    max_objects: int = 4
    # folder / emoji: augmentation.
    random_crop: bool = False
    flip: bool = False
    # Render or decode everything once into memory (fast epochs on a small CPU).
    cache: bool = True

    def __post_init__(self) -> None:
        if self.kind in ("folder", "emoji") and not self.path:
            raise ValueError(f"data.path is required for data.kind={self.kind!r}")
        for name in ("size", "resolution", "max_objects"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)}")
