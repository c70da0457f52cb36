"""Images per second a training loader delivers from one folder of pictures, read four ways:
the folder itself, its shards by index (one seek per image), its shards in sequence
(`data.stream`), and the same stream through a pipe (`data.shard_url=pipe:cat ...`, as an object
store's command would be).

    python benchmarks/shard_reading.py [--images 1500] [--size 160] [--rounds 3] [--workers 0]

The pictures are random-noise PNGs (`--size` px, so decoding costs what a photo of that size
costs) cut to 64 px crops, batch 16, one pass each, the readers taken in turn each round (round
robin) so the machine's drift falls on all of them. Prints one JSON line per reader: the median
images per second and the ratio to the folder's. Run it alone: the timings are the point.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset
from ldmkit.data.shards import write_shards
from ldmkit.training.data_stream import train_loader


def _pictures(root: Path, count: int, size: int) -> None:
    rng = np.random.default_rng(0)
    for k in range(count):
        folder = root / f"class{k % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (size, size + k % 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{k:05d}.png", compress_level=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _pictures(root / "folder", args.images, args.size)
        write_shards(root / "folder", root / "shards", per_shard=100)
        common = dict(resolution=64, random_crop=True, cache=False)
        configs = {
            "folder": DataConfig(kind="folder", path=str(root / "folder"), **common),  # type: ignore[arg-type]
            "shards by index": DataConfig(kind="shards", path=str(root / "shards"), **common),  # type: ignore[arg-type]
            "shards streamed": DataConfig(
                kind="shards",
                path=str(root / "shards"),
                stream=True,
                **common,  # type: ignore[arg-type]
            ),
            "shards streamed through a pipe": DataConfig(
                kind="shards",
                path=str(root / "shards"),
                stream=True,
                shard_url=f"pipe:cat {root / 'shards'}/{{shard}}",
                **common,  # type: ignore[arg-type]
            ),
        }
        datasets = {name: build_dataset(config, "train") for name, config in configs.items()}
        rates: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(args.rounds):
            for name, config in configs.items():
                dataset = datasets[name]
                steps = len(dataset) // 16  # type: ignore[arg-type]
                start = time.perf_counter()
                count = 0
                for batch in train_loader(dataset, config, 16, 0, 0, steps, args.workers):
                    count += len(batch["index"])
                rates[name].append(count / (time.perf_counter() - start))
        base = statistics.median(rates["folder"])
        for name, values in rates.items():
            rate = statistics.median(values)
            row = {
                "reader": name,
                "images_per_s": round(rate, 1),
                "vs_folder": round(rate / base, 3),
            }
            print(json.dumps(row))


if __name__ == "__main__":
    main()
