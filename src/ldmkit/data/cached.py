"""Reading a dataset once: unreadable files are found, counted and left out, and the images can
be kept in memory (uint8) for fast epochs on a small machine."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch.utils.data import Dataset

from ldmkit.data.image_folder import ImageLoadError, SkippedImageWarning
from ldmkit.progress import progress


class CachedDataset(Dataset[dict[str, Any]]):
    """The readable items of `source`, read once. With `keep_images` (the default) their images
    are kept as uint8 (N, C, H, W), or a list of (C, H, W) when they differ in shape; without,
    items are read again from `source` when asked for.
    `skipped` holds one line per unreadable file ("path: why"); each is warned about once and
    none is replaced by another item, so every readable item appears exactly once an epoch."""

    def __init__(
        self,
        source: Dataset[dict[str, Any]],
        description: str = "caching data",
        keep_images: bool = True,
    ):
        self.source = source
        self.keep_images = keep_images
        self.skipped: list[str] = list(getattr(source, "skipped", []))  # e.g. when sharded
        self.positions: list[int] = []  # the source's index of each kept item
        self.sizes: list[tuple[int, int]] = []  # (height, width) of each kept item's image
        self.items: list[dict[str, Any]] = []
        images: list[torch.Tensor] = []
        n = len(source)  # type: ignore[arg-type]
        for i in progress(range(n), description):
            try:
                item = source[i]
            except ImageLoadError as error:
                if str(error) not in self.skipped:  # a file's crops fail alike: once each
                    self.skipped.append(str(error))
                    warnings.warn(f"skipping unreadable image: {error}", SkippedImageWarning, 2)
                continue
            self.positions.append(i)
            self.sizes.append(tuple(item["image"].shape[-2:]))  # type: ignore[arg-type]
            if keep_images:
                image = ((item["image"] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
                images.append(image)
                self.items.append({k: v for k, v in item.items() if k != "image"})
        if not self.positions:
            raise ValueError(
                f"none of the {n} images could be read (see the warnings above); check the "
                "folder holds images this can decode (png, jpg, webp, bmp, tif)"
            )
        # One tensor when every image has one shape; a list when they come in buckets.
        self.images: torch.Tensor | list[torch.Tensor] | None = None
        if keep_images:
            self.images = torch.stack(images) if len(set(self.sizes)) == 1 else images

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.images is None:
            return self.source[self.positions[index]]
        item = dict(self.items[index])
        item["image"] = self.images[index].float() / 127.5 - 1.0
        return item


def skipped_files(dataset: Dataset[Any]) -> list[str]:
    """The unreadable files a dataset built by `build_dataset` left out ("path: why" each)."""
    return list(getattr(dataset, "skipped", []))


def item_sizes(dataset: Dataset[Any]) -> list[tuple[int, int]] | None:
    """(height, width) of each item's image where the dataset knows them without reading (a
    `CachedDataset`, or a dataset of latents with a `sizes` attribute), else None."""
    sizes = getattr(dataset, "sizes", None)
    return list(sizes) if sizes is not None else None
