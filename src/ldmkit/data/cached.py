"""An in-memory copy of a dataset's images (uint8), for fast epochs on a small machine."""

from typing import Any

import torch
from torch.utils.data import Dataset

from ldmkit.progress import progress


class CachedDataset(Dataset[dict[str, Any]]):
    """Reads every item of `source` once; images are kept as uint8 (N, C, H, W)."""

    def __init__(self, source: Dataset[dict[str, Any]], description: str = "caching data"):
        n = len(source)  # type: ignore[arg-type]
        first = source[0]
        self.images = torch.empty((n, *first["image"].shape), dtype=torch.uint8)
        self.items: list[dict[str, Any]] = []
        for i in progress(range(n), description):
            item = first if i == 0 else source[i]
            self.images[i] = ((item["image"] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
            self.items.append({k: v for k, v in item.items() if k != "image"})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.items[index])
        item["image"] = self.images[index].float() / 127.5 - 1.0
        return item
