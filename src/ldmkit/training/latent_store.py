"""Latents kept on disk between runs: the first run that encodes a dataset with a first stage
stores the latents (safetensors files of up to `PER_FILE` latents of one shape) with their
labels and captions; a later run with the same first stage and the same data loads them
instead of encoding again. The key hashes the first stage's weights and the data
(`data.factory.data_fingerprint`: a folder's files, sizes, times and captions), so a changed
folder or autoencoder is encoded afresh. Items are read from the files on demand, so the
store can be larger than memory.

Where: `$LDMKIT_LATENT_STORE`, else `latents/` under ldmkit's cache (`$LDMKIT_CACHE` or
`~/.cache/ldmkit`). Delete a folder there to drop its latents.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import Dataset

from ldmkit.autoencoder import Autoencoder
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import data_fingerprint
from ldmkit.nn.native import cache_root
from ldmkit.training.latent_cache import LatentDataset, encode_dataset

FORMAT = "ldmkit-latents-1"
PER_FILE = 4096
META = "meta.json"


def store_root() -> Path:
    """The folder that holds every stored latent set."""
    root = os.environ.get("LDMKIT_LATENT_STORE")
    return Path(root) if root else cache_root() / "latents"


def latent_key(autoencoder: Autoencoder, data: DataConfig) -> str:
    """The store's name for `data` encoded by `autoencoder` (its weights and latent scale)."""
    digest = hashlib.sha256(f"{FORMAT}:{data_fingerprint(data)}".encode())
    digest.update(repr(autoencoder.config).encode())  # the architecture
    for name, tensor in sorted(autoencoder.state_dict().items()):
        digest.update(name.encode())
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:32]


class StoredLatents:
    """The latents of a stored set, read one at a time from their files (opened once per
    process)."""

    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        self.folder = folder
        self.where: list[tuple[str, int]] = [("", 0)] * meta["count"]
        self.sizes: list[tuple[int, int]] = [(0, 0)] * meta["count"]
        for entry in meta["files"]:
            for row, index in enumerate(entry["indices"]):
                self.where[index] = (entry["name"], row)
                self.sizes[index] = tuple(entry["shape"][-2:])  # type: ignore[assignment]
        self._handles: dict[str, Any] = {}
        self._pid = -1

    def __len__(self) -> int:
        return len(self.where)

    def __getitem__(self, index: int) -> torch.Tensor:
        if self._pid != os.getpid():
            self._handles, self._pid = {}, os.getpid()
        name, row = self.where[index]
        if name not in self._handles:
            self._handles[name] = safe_open(str(self.folder / name), framework="pt")
        return self._handles[name].get_slice("latents")[row]


def _save(encoded: LatentDataset, folder: Path) -> None:
    """Write `encoded`'s latents, labels and captions into `folder`, atomically."""
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n = len(encoded)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i in range(n):
        by_shape.setdefault(tuple(encoded.latents[i].shape), []).append(i)
    files = []
    for shape, members in sorted(by_shape.items()):
        for start in range(0, len(members), PER_FILE):
            chunk = members[start : start + PER_FILE]
            name = f"latents-{len(files):05d}.safetensors"
            stacked = torch.stack([encoded.latents[i] for i in chunk]).contiguous()
            save_file({"latents": stacked}, str(tmp / name))
            files.append({"name": name, "shape": list(shape), "indices": chunk})
    meta = {
        "format": FORMAT,
        "count": n,
        "files": files,
        "labels": [int(label) for label in encoded.labels],
        "captions": list(encoded.captions),
    }
    (tmp / META).write_text(json.dumps(meta))
    try:
        os.replace(tmp, folder)
    except OSError:  # another process stored the same set first: theirs is as good
        shutil.rmtree(tmp, ignore_errors=True)


def _load(folder: Path, images: Dataset[dict[str, Any]] | None) -> LatentDataset:
    meta = json.loads((folder / META).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{folder} is not a stored latent set ({meta.get('format')!r})")
    latents = StoredLatents(folder, meta)
    labels = torch.tensor(meta["labels"], dtype=torch.long)
    return LatentDataset(latents, labels, meta["captions"], images)  # type: ignore[arg-type]


def stored_latents(
    autoencoder: Autoencoder,
    images: Dataset[dict[str, Any]],
    data: DataConfig,
    keep_images: bool = False,
    write: bool = True,
) -> tuple[LatentDataset, str]:
    """The latents of `images` (the training split of `data`), loaded from the store when an
    earlier run stored them, else encoded (and stored when `write`). Returns the dataset and a
    line saying which. Data with layouts is encoded in memory (layouts are not stored)."""
    kept = images if keep_images else None
    if "layout" in images[0]:
        return encode_dataset(autoencoder, images, keep_images=keep_images), ""
    folder = store_root() / latent_key(autoencoder, data)
    if (folder / META).is_file():
        loaded = _load(folder, kept)
        if len(loaded) == len(images):  # type: ignore[arg-type]
            return loaded, f"latents: {len(loaded)} read from {folder} (stored by an earlier run)"
    encoded = encode_dataset(autoencoder, images, keep_images=keep_images)
    if not write:
        return encoded, ""
    _save(encoded, folder)
    return encoded, f"latents: {len(encoded)} encoded and stored in {folder}"
