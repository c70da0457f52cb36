"""A checkpoint's short hash, as the web UIs' "Model hash" shows it: the first 10 hex digits of
the SHA-256 of a single file (a folder: of its weight files' names and digests). Hashing
gigabytes takes seconds, so digests are cached by path, size and modification time."""

import hashlib
import json
import os
from pathlib import Path

from ldmkit.nn.native import cache_root

WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".bin", ".pt", ".pth")
SHORT = 10


def _cache_file() -> Path:
    return cache_root() / "model_hashes.json"


def _file_digest(path: Path, cache: dict[str, str]) -> str:
    stat = path.stat()
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    if key not in cache:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
        cache[key] = digest.hexdigest()
    return cache[key]


def model_hash(path: Path) -> str:
    """The short hash of a checkpoint file or folder (every weight file below it)."""
    path = Path(path)
    try:
        cache = json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        cache = {}
    if path.is_file():
        full = _file_digest(path, cache)
    else:
        files = sorted(p for p in path.rglob("*") if p.suffix in WEIGHT_SUFFIXES and p.is_file())
        listing = "".join(f"{p.relative_to(path)}:{_file_digest(p, cache)}\n" for p in files)
        full = hashlib.sha256(listing.encode()).hexdigest()
    try:
        _cache_file().parent.mkdir(parents=True, exist_ok=True)
        temporary = _cache_file().with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(cache))
        temporary.replace(_cache_file())
    except OSError:
        pass  # a read-only home: the hash is recomputed next time
    return full[:SHORT]
