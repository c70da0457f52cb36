"""Encode a dataset once with the frozen first stage: diffusion then trains on stored latents."""

from typing import Any

import torch
from torch.utils.data import Dataset

from ldmkit.autoencoder import Autoencoder
from ldmkit.data.collate import collate
from ldmkit.progress import progress


class LatentDataset(Dataset[dict[str, Any]]):
    """Items {"latent": (c, h, w), "label": int, "caption": str, "index": int} from normalised
    latents (the caption is "" where the data has none)."""

    def __init__(self, latents: torch.Tensor, labels: torch.Tensor, captions: list[str]):
        self.latents, self.labels, self.captions = latents, labels, captions

    def __len__(self) -> int:
        return len(self.latents)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {
            "latent": self.latents[index],
            "label": int(self.labels[index]),
            "caption": self.captions[index],
            "index": index,
        }


@torch.no_grad()
def encode_dataset(
    autoencoder: Autoencoder, dataset: Dataset[dict[str, Any]], batch_size: int = 64
) -> LatentDataset:
    """The posterior means (normalised by the stored shift and scale) of every image."""
    device = autoencoder.latent_scale.device  # a buffer: pixel space has no parameters
    n = len(dataset)  # type: ignore[arg-type]
    latents, labels, captions = [], [], []
    for start in progress(range(0, n, batch_size), "encoding latents"):
        batch = collate([dataset[i] for i in range(start, min(n, start + batch_size))])
        latents.append(autoencoder.to_latent(batch["image"].to(device)).cpu())
        labels.append(batch["label"])
        captions.extend(c or "" for c in batch.get("caption", [""] * len(batch["label"])))
    return LatentDataset(torch.cat(latents), torch.cat(labels), captions)
