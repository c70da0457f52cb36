"""An image folder as WebDataset tar shards, and a dataset that reads them by index.

`write_shards` checks every image once (unreadable files are counted, not written), splits the
files as the folder would be split (`data.split`) and writes `train-NNNNN.tar` and
`heldout-NNNNN.tar`: per sample the image's own bytes (`KEY.png` / `KEY.jpg` ...), its caption
(`KEY.txt`), label (`KEY.cls`) and size and name (`KEY.json`), so WebDataset and other tar
readers load them as they are. `index.json` beside them lists every sample with the byte range
of its image, so `ShardDataset` reads any sample with one seek: batches stay a pure function of
the step (the same batches as the folder for the same seed), a run resumes mid-epoch exactly,
and each process reads only its share of each batch. The shards may live elsewhere
(`data.shard_url`, read by `data.shard_reader`); `data.stream` reads them in sequence instead
(`data.stream`).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ldmkit.data.fit import ImageFit
from ldmkit.data.image_folder import ImageLoadError, index_folder, load_image
from ldmkit.data.shard_reader import ShardReader
from ldmkit.data.split import Split, split_indices
from ldmkit.progress import progress

INDEX = "index.json"
FORMAT = "ldmkit-shards-1"


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> list[int]:
    """Add `data` as `name`; returns [offset, size] of the data in the tar file."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # the same folder gives the same bytes
    start = tar.offset
    tar.addfile(info, io.BytesIO(data))
    return [start + tarfile.BLOCKSIZE, len(data)]  # a USTAR header is one block


def write_shards(
    root: Path, out: Path, heldout_fraction: float = 0.05, seed: int = 0, per_shard: int = 1000
) -> dict[str, Any]:
    """Write the folder `root` as shards under `out`; returns the index (also `out/index.json`)."""
    if per_shard < 1:
        raise ValueError(f"--per-shard must be >= 1, got {per_shard}")
    records, class_names = index_folder(root)
    names = [record.path.relative_to(root).as_posix() for record in records]
    out.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {
        "format": FORMAT,
        "source": str(root),
        "class_names": list(class_names),
        "heldout_fraction": heldout_fraction,
        "seed": seed,
        "splits": {},
        "skipped": {},  # per split: "path: why" of each unreadable file
    }
    for split in ("train", "heldout"):
        chosen = split_indices(names, split, heldout_fraction, seed) if len(names) > 1 else []
        if split == "train" and len(names) == 1:
            chosen = [0]
        samples: list[dict[str, Any]] = []
        skipped: list[str] = []
        tar: tarfile.TarFile | None = None
        shard_name = ""
        for i in progress(chosen, f"writing {split} shards"):
            record, name = records[i], names[i]
            try:
                width, height = load_image(record.path).size  # decodes: bad files stop here
            except ImageLoadError as error:
                skipped.append(str(error))
                continue
            if tar is None or len(samples) % per_shard == 0:
                if tar is not None:
                    tar.close()
                shard_name = f"{split}-{len(samples) // per_shard:05d}.tar"
                tmp = out / (shard_name + ".tmp")
                tar = tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
            key = f"{len(samples):09d}"
            ext = record.path.suffix.lower().lstrip(".")
            image_range = _member(tar, f"{key}.{ext}", record.path.read_bytes())
            _member(tar, f"{key}.txt", record.caption.encode())
            _member(tar, f"{key}.cls", str(record.label).encode())
            size = {"width": width, "height": height, "file_name": name}
            _member(tar, f"{key}.json", json.dumps(size).encode())
            samples.append(
                {
                    "shard": shard_name,
                    "image": image_range,
                    "caption": record.caption,
                    "label": record.label,
                    "file_name": name,
                }
            )
        if tar is not None:
            tar.close()
        index["splits"][split] = samples
        index["skipped"][split] = skipped
    for tmp in out.glob("*.tar.tmp"):  # whole shards only, then the index
        os.replace(tmp, tmp.with_suffix(""))
    tmp_index = out / (INDEX + ".tmp")
    tmp_index.write_text(json.dumps(index))
    os.replace(tmp_index, out / INDEX)
    return index


def shard_index_folder(path: str | Path) -> Path:
    """The folder of the index of the shards `path` names: a folder with an index.json (or
    that file), or WebDataset tars another tool wrote (a folder of them, or a pattern such as
    `DIR/{00000..00099}.tar`), indexed once into ldmkit's cache (`shard_index.cached_index`)."""
    path = Path(path)
    if path.name == INDEX and path.is_file():
        return path.parent
    if (path / INDEX).is_file():
        return path
    from ldmkit.data.shard_index import cached_index, find_tars

    try:
        tars = find_tars(str(path))
    except ValueError:
        raise FileNotFoundError(
            f"{path} holds no {INDEX} and names no .tar shards; write shards with `ldmkit data "
            "shards DIR OUT` and pass --data shards:OUT, or pass WebDataset shards as "
            "--data 'shards:DIR/{00000..00099}.tar'"
        ) from None
    return cached_index(tars)


def read_index(path: str | Path) -> dict[str, Any]:
    """The index of the shards at `path` (see `shard_index_folder`)."""
    file = shard_index_folder(path) / INDEX
    index = json.loads(file.read_text())
    if index.get("format") != FORMAT:
        raise ValueError(f"{file} is not an ldmkit shard index (format {index.get('format')!r})")
    return index


class ShardDataset(Dataset[dict[str, torch.Tensor | str | int]]):
    """The samples of one split of the shards at `root`, by index: image (3,R,R) in [-1,1],
    caption, label, index. `url` (`data.shard_url`) says where the shard files are when not
    beside the index. Files are opened once per process (DataLoader workers included)."""

    def __init__(
        self,
        root: str | Path,
        fit: ImageFit,
        split: Split = "train",
        crops_per_image: int = 1,
        url: str = "",
    ) -> None:
        self.root = shard_index_folder(root)
        self.fit = fit
        self.crops_per_image = crops_per_image
        index = read_index(self.root)
        if split == "all":
            self.samples = index["splits"]["train"] + index["splits"]["heldout"]
        else:
            self.samples = index["splits"][split]
        if not self.samples:
            raise ValueError(f"the shards at {self.root} hold no {split} samples")
        self.class_names = tuple(index["class_names"])
        splits = ("train", "heldout") if split == "all" else (split,)
        self.skipped: list[str] = [line for s in splits for line in index["skipped"][s]]
        # Shards indexed where they lie (`data index`) record their folder; ours are beside it.
        self.reader = ShardReader(self.root / index.get("shard_folder", "."), url)

    def __len__(self) -> int:
        return len(self.samples) * self.crops_per_image

    def image_bytes(self, sample: int) -> bytes:
        """The image file of the `sample`-th sample (not item: a sample has crops_per_image)."""
        entry = self.samples[sample]
        return self.reader.read(entry["shard"], *entry["image"])

    def item(self, index: int, data: bytes) -> dict[str, torch.Tensor | str | int]:
        """Item `index` made from its sample's image file `data`."""
        sample = self.samples[index // self.crops_per_image]
        try:
            image = load_image(io.BytesIO(data), self.fit.background)
        except ImageLoadError as error:
            where = self.reader.location(sample["shard"])
            raise ImageLoadError(f"{where} sample {index}: {error}") from None
        return {
            "image": self.fit(image, index),
            "caption": sample["caption"],
            "label": sample["label"],
            "index": index,
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str | int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        return self.item(index, self.image_bytes(index // self.crops_per_image))
