"""Encode a dataset once with the frozen first stage: diffusion then trains on stored latents."""

from typing import Any

import torch
from torch.utils.data import Dataset

from ldmkit.autoencoder import Autoencoder
from ldmkit.data.cached import item_sizes
from ldmkit.data.collate import collate
from ldmkit.progress import progress


class LatentDataset(Dataset[dict[str, Any]]):
    """Items {"latent": (c, h, w), "label": int, "caption": str, "index": int} from normalised
    latents (the caption is "" where the data has none), plus "layout" where the data has
    layouts, and the source's "image" (and "semantic" map, if any) when `images` is given:
    spatial conditions are made from them."""

    def __init__(
        self,
        latents: torch.Tensor | list[torch.Tensor],
        labels: torch.Tensor,
        captions: list[str],
        images: Dataset[dict[str, Any]] | None = None,
        layouts: list[Any] | None = None,
    ):
        self.latents, self.labels, self.captions = latents, labels, captions
        self.images, self.layouts = images, layouts
        # Latents of several shapes (aspect-ratio buckets) come as a list, or from the store,
        # which knows their sizes without reading them; the sizes let the batch sampler keep
        # one shape per batch. None: one shape for all.
        sizes = getattr(latents, "sizes", None)
        if isinstance(latents, list):
            sizes = [tuple(z.shape[-2:]) for z in latents]
        self.sizes: list[tuple[int, int]] | None = (
            sizes if sizes and len(set(sizes)) > 1 else None  # type: ignore[assignment]
        )

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
    sizes = item_sizes(dataset)
    if sizes is not None and len(set(sizes)) > 1:
        return _encode_buckets(autoencoder, dataset, sizes, batch_size, keep_images)
    for start in progress(range(0, n, batch_size), "encoding latents"):
        batch = collate([dataset[i] for i in range(start, min(n, start + batch_size))])
        latents.append(autoencoder.to_latent(batch["image"].to(device)).cpu())
        labels.append(batch["label"])
        captions.extend(c or "" for c in batch.get("caption", [""] * len(batch["label"])))
        layouts.extend(batch.get("layout", []))
    source = dataset if keep_images else None
    kept = layouts if len(layouts) == n else None
    return LatentDataset(torch.cat(latents), torch.cat(labels), captions, source, kept)


def _encode_buckets(
    autoencoder: Autoencoder,
    dataset: Dataset[dict[str, Any]],
    sizes: list[tuple[int, int]],
    batch_size: int,
    keep_images: bool,
) -> LatentDataset:
    """`encode_dataset` for items of several image sizes: encoded a size at a time, kept as a
    list of latents in the dataset's order."""
    device = autoencoder.latent_scale.device
    n = len(sizes)
    latents: list[torch.Tensor | None] = [None] * n
    labels = torch.zeros(n, dtype=torch.long)
    captions = [""] * n
    chunks = []
    for size in sorted(set(sizes)):
        members = [i for i in range(n) if sizes[i] == size]
        chunks += [members[k : k + batch_size] for k in range(0, len(members), batch_size)]
    for chunk in progress(chunks, "encoding latents"):
        batch = collate([dataset[i] for i in chunk])
        encoded = autoencoder.to_latent(batch["image"].to(device)).cpu()
        for row, i in enumerate(chunk):
            latents[i] = encoded[row]
            labels[i] = batch["label"][row]
            captions[i] = (batch.get("caption") or [""] * len(chunk))[row] or ""
    stored = [z for z in latents if z is not None]
    return LatentDataset(stored, labels, captions, dataset if keep_images else None)
