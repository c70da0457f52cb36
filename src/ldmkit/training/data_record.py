"""What a run trained on: `RUN/data.json` (the held-out split, the files left out), a row in
the run's history and one line on stderr."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from ldmkit.checkpoint import write_json
from ldmkit.config import to_dict
from ldmkit.data.cached import item_sizes, skipped_files
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import split_names

DATA_RECORD = "data.json"


def record_data(
    run_dir: Path,
    config: DataConfig,
    train: Dataset[Any],
    step: int,
    history: list[dict],
    streams: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Write `run_dir/data.json`, append {"step", "data_images", "data_skipped"} to `history`
    and say how many images the run reads; returns the record. Where training streams shards
    (`data.stream`), `streams` is (processes, loader workers) reading them: a run resumed with
    others is warned that its batches from there on differ from an uninterrupted run's."""
    skipped = skipped_files(train)
    images = len(train)  # type: ignore[arg-type]
    heldout = split_names(config, "heldout")
    record: dict[str, Any] = {
        "data": to_dict(config),
        "train_images": images,
        "skipped": skipped,
    }
    sizes = item_sizes(train) or []
    if len(set(sizes)) > 1:  # aspect-ratio buckets: how many images each shape holds
        counts = Counter(f"{w}x{h}" for h, w in sizes)
        record["bucket_sizes"] = dict(sorted(counts.items()))
    if config.kind in ("folder", "emoji"):
        record["heldout_images"] = len(heldout)
        record["heldout_files"] = heldout
    if streams is not None:
        record["streams"] = {"processes": streams[0], "workers": max(1, streams[1])}
        _check_streams(run_dir / DATA_RECORD, record["streams"], step)
    write_json(run_dir / DATA_RECORD, record)
    history.append({"step": step, "data_images": images, "data_skipped": len(skipped)})
    crops = config.crops_per_image
    each = f" ({images // crops} files x {crops} crops)" if crops > 1 else ""
    parts = [f"data: {images} training images{each}"]
    if config.kind in ("folder", "emoji"):
        parts.append(f"{len(heldout)} held out (data.heldout_fraction={config.heldout_fraction})")
    if skipped:
        parts.append(f"{len(skipped)} unreadable file(s) left out")
    if streams is not None:
        layout = record["streams"]
        parts.append(
            f"streamed from shards by {layout['processes']} process(es) x "
            f"{layout['workers']} loader worker(s)"
        )
    print(", ".join(parts) + f"; see {run_dir / DATA_RECORD}", file=sys.stderr)
    return record


def check_bucket_step(config: DataConfig, multiple: int, what: str) -> None:
    """Buckets' sides must suit the model: a ValueError naming data.bucket_step otherwise."""
    if config.fit == "bucket" and config.bucket_step % multiple:
        raise ValueError(
            f"data.bucket_step={config.bucket_step}: {what} need image sides that are "
            f"multiples of {multiple}; set data.bucket_step={multiple} (or a multiple of it "
            "that divides data.resolution)"
        )


def _check_streams(path: Path, streams: dict[str, int], step: int) -> None:
    """Warn when a resumed run reads its streamed shards with other processes or workers."""
    if step == 0 or not path.is_file():
        return
    before = json.loads(path.read_text()).get("streams")
    if before and before != streams:
        print(
            f"warning: data.stream: this run read the shards with {before['processes']} "
            f"process(es) x {before['workers']} loader worker(s) and resumes with "
            f"{streams['processes']} x {streams['workers']}: each stream resumes where the new "
            "layout would be, so the batches from here on differ from an uninterrupted run's",
            file=sys.stderr,
        )
