"""An index for WebDataset shards that other tools wrote (img2dataset and the like), so ldmkit
trains on them as on its own shards: by index or streamed (`data.stream`), split, resumable.

WebDataset groups a tar's consecutive members by key: the member's path up to the first dot of
its file name (`part/000123.jpg` and `part/000123.txt` are sample `part/000123`). A sample's
image is its first member of an image type; its caption its `.txt` (else a `.json`'s
"caption"); its label its `.cls`. The shards are not rewritten: `index.json` records each
image's byte range in its tar and where the tars are (`shard_folder`, relative to the index).
Samples without a readable image (or without a label where others have one) are counted, per
split, and left out.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

from ldmkit.data.image_folder import ImageLoadError, load_image
from ldmkit.data.shards import FORMAT, INDEX
from ldmkit.data.split import heldout_mask
from ldmkit.nn.native import cache_root
from ldmkit.progress import progress

IMAGE_TYPES = ("jpg", "jpeg", "png", "webp", "bmp")


def find_tars(source: str) -> list[Path]:
    """The tar files `source` names: a folder (its *.tar), or a pattern with braces
    (`shards/{00000..00099}.tar`) or wildcards. A ValueError naming `source` when none."""
    path = Path(source)
    if path.is_dir():
        tars = sorted(path.glob("*.tar"))
    else:
        from glob import glob

        patterns = [source]
        try:
            from braceexpand import braceexpand  # comes with webdataset

            patterns = list(braceexpand(source))
        except ImportError:
            pass
        tars = sorted({Path(p) for pattern in patterns for p in glob(pattern)})
    tars = [tar for tar in tars if tar.is_file()]
    if not tars:
        raise ValueError(
            f"{source} names no tar files; give a folder of .tar shards or a pattern such as "
            "'shards/{00000..00099}.tar'"
        )
    return tars


def _key(name: str) -> tuple[str, str]:
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def _samples(tar_path: Path, shard: str) -> list[dict[str, Any]]:
    """The samples of one tar: key, image range or None, caption, label, in tar order."""
    samples: list[dict[str, Any]] = []
    with tarfile.open(tar_path, "r:") as tar:
        for member in tar:
            if not member.isfile() or Path(member.name).name.startswith("__"):
                continue
            key, ext = _key(member.name)
            if not samples or samples[-1]["key"] != key:
                samples.append({"key": key, "image": None, "caption": None, "label": -1})
            sample = samples[-1]
            if ext in IMAGE_TYPES and sample["image"] is None:
                sample["image"] = [member.offset_data, member.size]
            elif ext in ("txt", "cls", "json"):
                where = f"{tar_path} member {member.name}"
                text = _text(tar.extractfile(member), where)
                if ext == "txt":
                    sample["caption"] = text.strip()
                elif ext == "cls":
                    sample["label"] = _label(text, where)
                elif sample["caption"] is None:
                    caption = json.loads(text).get("caption") if text.strip() else None
                    sample["caption"] = caption if isinstance(caption, str) else None
    for sample in samples:
        sample["shard"] = shard
    return samples


def _text(handle: Any, where: str) -> str:
    data = handle.read() if handle is not None else b""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{where} is not UTF-8 text (byte {error.start})") from None


def _label(text: str, where: str) -> int:
    try:
        label = int(text.strip())
    except ValueError:
        raise ValueError(f"{where}: a class label must be a whole number, got {text!r}") from None
    if label < 0:
        raise ValueError(f"{where}: class labels must be 0 or more, got {label}")
    return label


def index_shards(
    tars: list[Path],
    out: Path,
    heldout_fraction: float = 0.05,
    seed: int = 0,
    check: bool = True,
) -> dict[str, Any]:
    """Write `out/index.json` for the WebDataset shards `tars` (all in one folder); returns it.
    With `check`, every image is decoded once and unreadable ones are left out."""
    folders = {tar.resolve().parent for tar in tars}
    if len(folders) != 1:
        raise ValueError(f"the shards must be in one folder, not {len(folders)}")
    folder = folders.pop()
    samples: list[dict[str, Any]] = []
    for tar in progress(tars, "reading shard headers"):
        samples += _samples(tar, tar.name)
    names = [f"{sample['shard']}/{sample['key']}" for sample in samples]
    heldout = heldout_mask(names, heldout_fraction, seed) if len(names) > 1 else [False]
    labels = {sample["label"] for sample in samples} - {-1}
    reader: dict[str, Any] = {}
    index: dict[str, Any] = {
        "format": FORMAT,
        "source": str(folder),
        "shard_folder": os.path.relpath(folder, out.resolve()),
        "class_names": [f"class {i}" for i in range(max(labels) + 1)] if labels else [],
        "heldout_fraction": heldout_fraction,
        "seed": seed,
        "splits": {"train": [], "heldout": []},
        "skipped": {"train": [], "heldout": []},
    }
    try:
        for sample, name, held in progress(
            list(zip(samples, names, heldout, strict=True)),
            "checking images" if check else "indexing samples",
        ):
            split = "heldout" if held else "train"
            why = _unreadable(sample, folder, reader) if check else None
            if labels and sample["label"] == -1:
                why = "no .cls label, where other samples have one"
            if sample["image"] is None:
                why = f"no image member ({', '.join(IMAGE_TYPES)})"
            if why is not None:
                index["skipped"][split].append(f"{name}: {why}")
                continue
            entry = {k: sample[k] for k in ("shard", "image", "label")}
            index["splits"][split].append(
                {**entry, "caption": sample["caption"] or "", "file_name": name}
            )
    finally:
        for handle in reader.values():
            handle.close()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (INDEX + ".tmp")
    tmp.write_text(json.dumps(index))
    os.replace(tmp, out / INDEX)
    return index


def _unreadable(sample: dict[str, Any], folder: Path, handles: dict[str, Any]) -> str | None:
    """Why the sample's image does not decode, or None."""
    if sample["image"] is None:
        return None
    shard = sample["shard"]
    if shard not in handles:
        handles[shard] = open(folder / shard, "rb")  # noqa: SIM115 (closed by the caller)
    handle = handles[shard]
    offset, size = sample["image"]
    handle.seek(offset)
    try:
        load_image(io.BytesIO(handle.read(size)))
    except ImageLoadError as error:
        return str(error)
    return None


def cached_index(tars: list[Path]) -> Path:
    """The folder of an index of `tars` in ldmkit's cache (`shard-index/` under `$LDMKIT_CACHE`
    or ~/.cache/ldmkit), written the first time (default split: 5% held out, seed 0; every
    image checked) and again when a tar changes (path, size and time are the key)."""
    digest = hashlib.sha256()
    for tar in tars:
        stat = tar.stat()
        digest.update(json.dumps([str(tar.resolve()), stat.st_size, stat.st_mtime_ns]).encode())
    folder = cache_root() / "shard-index" / digest.hexdigest()[:24]
    if not (folder / INDEX).is_file():
        index_shards(tars, folder)
    return folder
