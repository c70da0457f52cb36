"""Encode a dataset once with the frozen first stage: diffusion then trains on stored latents."""

from typing import Any

import torch
from torch.utils.data import Dataset

from ldmkit.autoencoder import Autoencoder
from ldmkit.data.collate import collate
from ldmkit.progress import progress


class LatentDataset(Dataset[dict[str, Any]]):
    """Items {"latent": (c, h, w), "label": int, "caption": str, "index": int} from normalised
    latents (the caption is "" where the data has none), plus "layout" where the data has
    layouts, and the source's "image" (and "semantic" map, if any) when `images` is given:
    spatial conditions are made from them."""

    def __init__(
        self,
        latents: torch.Tensor,
        labels: torch.Tensor,
        captions: list[str],
        images: Dataset[dict[str, Any]] | None = None,
        layouts: list[Any] | None = None,
    ):
        self.latents, self.labels, self.captions = latents, labels, captions
        self.images, self.layouts = images, layouts

    def __len__(self) -> int:
        return len(self.latents)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = {
            "latent": self.latents[index],
            "label": int(self.labels[index]),
            "caption": self.captions[index],
            "index": index,
        }
        if self.layouts is not None:
            item["layout"] = self.layouts[index]
        if self.images is not None:
            source = self.images[index]
            item.update({k: source[k] for k in ("image", "semantic") if k in source})
        return item


@torch.no_grad()
def encode_dataset(
    autoencoder: Autoencoder,
    dataset: Dataset[dict[str, Any]],
    batch_size: int = 64,
    keep_images: bool = False,
) -> LatentDataset:
    """The posterior means (normalised by the stored shift and scale) of every image; with
    `keep_images` the items also carry the images (read from `dataset`)."""
    device = autoencoder.latent_scale.device  # a buffer: pixel space has no parameters
    n = len(dataset)  # type: ignore[arg-type]
    latents, labels, captions, layouts = [], [], [], []
    for start in progress(range(0, n, batch_size), "encoding latents"):
        batch = collate([dataset[i] for i in range(start, min(n, start + batch_size))])
        latents.append(autoencoder.to_latent(batch["image"].to(device)).cpu())
        labels.append(batch["label"])
        captions.extend(c or "" for c in batch.get("caption", [""] * len(batch["label"])))
        layouts.extend(batch.get("layout", []))
    source = dataset if keep_images else None
    kept = layouts if len(layouts) == n else None
    return LatentDataset(torch.cat(latents), torch.cat(labels), captions, source, kept)
