"""Typed description of a training or evaluation dataset."""

from dataclasses import dataclass
from typing import ClassVar, Literal

from ldmkit.data.buckets import bucket_sizes
from ldmkit.data.fit import FITS, parse_color
from ldmkit.data.shard_reader import check_shard_url, is_remote


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, at which resolution; `path` is for folder-backed kinds."""

    # shards: the folder `ldmkit data shards` wrote (tar shards + index.json).
    kind: Literal["shapes", "folder", "fashion-mnist", "emoji", "shards"] = "shapes"
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
    # folder / emoji: the fraction of files held out of training (chosen by a hash of each
    # relative path and the seed: `data/split.py`), used by snapshots and every eval command.
    heldout_fraction: float = 0.05
    # folder / emoji: how an image becomes a square (`data/fit.py`): crop | pad | native, or
    # bucket: the aspect-ratio bucket nearest its shape (`data/buckets.py`), sides multiples of
    # bucket_step; batches hold one bucket, held-out images stay centre-cropped squares.
    fit: Literal["crop", "pad", "native", "bucket"] = "crop"
    bucket_step: int = 16
    # folder / emoji: the colour under transparent pixels and around padded images.
    background: str = "white"
    # folder / emoji: items per file, each a crop at its own seeded position (for fit=native:
    # many crops at the photos' own scale, on the held-out side too).
    crops_per_image: int = 1
    # shards: where the shard files are when not beside index.json, a template with {shard}:
    # a path, a URL or `pipe:COMMAND` (`data/shard_reader.py`). A URL or pipe is read in
    # sequence, so it needs stream=true.
    shard_url: str = ""
    # shards: training reads the shards in sequence (`data/stream.py`): a seeded shard order
    # each epoch split across processes and loader workers, `interleave` shards read at once
    # into a shuffle buffer of `shuffle_buffer` images. The image cache is off.
    stream: bool = False
    shuffle_buffer: int = 1000
    interleave: int = 4

    # Where and how the same images are read; a run resumes with them changed.
    RESUME_IGNORES: ClassVar[tuple[str, ...]] = ("cache", "shard_url")

    def __post_init__(self) -> None:
        if self.kind in ("folder", "emoji", "shards") and not self.path:
            raise ValueError(f"data.path is required for data.kind={self.kind!r}")
        numbers = ("size", "resolution", "max_objects", "crops_per_image", "bucket_step")
        for name in (*numbers, "shuffle_buffer", "interleave"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ValueError(
                f"data.heldout_fraction must be in [0, 1), got {self.heldout_fraction}; "
                "0.05 holds out one image in twenty"
            )
        if self.fit not in FITS:
            raise ValueError(f"data.fit must be one of {', '.join(FITS)}, got {self.fit!r}")
        parse_color(self.background)
        if self.fit == "bucket":
            bucket_sizes(self.resolution, self.bucket_step)
        self._check_stream()

    def _check_stream(self) -> None:
        if (self.stream or self.shard_url) and self.kind != "shards":
            setting = "data.stream" if self.stream else "data.shard_url"
            raise ValueError(
                f"{setting} reads shards, not data.kind={self.kind!r}; write them with "
                "`ldmkit data shards DIR OUT` and pass --data shards:OUT"
            )
        check_shard_url(self.shard_url)
        if is_remote(self.shard_url) and not self.stream:
            raise ValueError(
                f"data.shard_url={self.shard_url!r} is read in sequence, not by seeking; add "
                "--set data.stream=true"
            )
        if self.stream and self.fit == "bucket":
            raise ValueError(
                "data.stream=true cannot batch by aspect-ratio bucket (data.fit=bucket); use "
                "data.fit=crop, pad or native, or read the shards by index (data.stream=false)"
            )
