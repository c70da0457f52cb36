"""A folder of images (recursive) with optional captions or class sub-folders, as a torch Dataset.

Captions come from ``metadata.jsonl`` at the root (one JSON object per line with ``file_name``,
relative to the root, and ``text``) or from sidecar ``.txt`` files next to the images. When there
are no captions and every image sits in a sub-folder, the top-level sub-folder names are the
class labels. An unreadable image raises :class:`ImageLoadError` naming the file.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from ldmkit.data.fit import ImageFit
from ldmkit.data.split import Split, split_indices

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
METADATA_FILE = "metadata.jsonl"

WHITE = (255, 255, 255)
# Modes that carry transparency and are composited over the background.
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# 16/32-bit integer grayscale; PNG stores 16-bit samples, 65535 / 257 = 255.
_WIDE_GRAY_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


class ImageLoadError(Exception):
    """An image file that cannot be read or decoded; the message names the file."""


class SkippedImageWarning(UserWarning):
    """Warned once per file that is left out of a dataset because it cannot be read."""


def load_image(
    path: str | Path | BinaryIO, background: tuple[int, int, int] = WHITE
) -> Image.Image:
    """Read an image file (or an open binary stream) as 8-bit RGB (transparency composited over
    `background`, 16-bit gray scaled, EXIF-rotated)."""
    if isinstance(path, str | Path):
        path = Path(path)
    try:
        with Image.open(path) as opened:
            opened.load()  # decode now so truncated files fail here, not later
            image = ImageOps.exif_transpose(opened)
            return _to_rgb(image, path, background)
    except ImageLoadError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageLoadError(
            f"cannot read image {path}: {err}. The file is missing, corrupt or not an image; "
            "delete or replace it."
        ) from err


def _to_rgb(
    image: Image.Image, path: Path | BinaryIO, background: tuple[int, int, int]
) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited over `background`."""
    mode = image.mode
    if mode == "P":
        # Palette images may carry transparency in the palette or as a single index.
        mode_out = "RGBA" if "transparency" in image.info else "RGB"
        image = image.convert(mode_out)
        mode = image.mode
    if mode == "RGB":
        return image
    if mode in _ALPHA_MODES:
        under = Image.new("RGBA", image.size, (*background, 255))
        return Image.alpha_composite(under, image.convert("RGBA")).convert("RGB")
    if mode in _WIDE_GRAY_MODES:
        values = np.asarray(image).astype(np.float64)  # (H, W)
        gray = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if mode == "F":
        raise ImageLoadError(
            f"cannot read image {path}: 32-bit float images (mode F) have no agreed range; "
            "convert it to 8-bit RGB first."
        )
    try:
        return image.convert("RGB")  # 1, L, CMYK, YCbCr, ...
    except ValueError as err:
        raise ImageLoadError(
            f"cannot read image {path}: unsupported image mode {mode!r}; convert it to RGB first."
        ) from err


@dataclass(frozen=True)
class ImageRecord:
    """One discovered image: its path, caption ("" if none) and label (-1 if none)."""

    path: Path
    caption: str
    label: int


def find_images(root: Path) -> list[Path]:
    """All image files under `root`, recursively, sorted; hidden files and folders are ignored."""
    found = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def read_metadata(path: Path) -> dict[str, str]:
    """Read `metadata.jsonl`: a map from `file_name` (relative, posix) to caption `text`."""
    captions: dict[str, str] = {}
    with path.open("rb") as raw_lines:
        for number, raw in enumerate(raw_lines, start=1):
            line = _utf8(raw, f"{path} line {number}")
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{path} line {number} is not valid JSON ({err.msg}); each line must be an "
                    'object like {"file_name": "a.png", "text": "a caption"}.'
                ) from err
            if not isinstance(entry, dict) or not {"file_name", "text"} <= entry.keys():
                raise ValueError(
                    f"{path} line {number} must be an object with keys 'file_name' and 'text', "
                    f"got {line.strip()[:80]!r}."
                )
            if not isinstance(entry["file_name"], str) or not isinstance(entry["text"], str):
                raise ValueError(f"{path} line {number}: 'file_name' and 'text' must be strings.")
            captions[Path(entry["file_name"]).as_posix()] = entry["text"]
    return captions


def _read_sidecar(image_path: Path) -> str | None:
    """Caption from `name.txt` next to `name.png`, or None when there is no such file."""
    sidecar = image_path.with_suffix(".txt")
    if not sidecar.is_file():
        return None
    return _utf8(sidecar.read_bytes(), f"the caption file {sidecar}").strip()


def _utf8(data: bytes, where: str) -> str:
    """`data` as UTF-8 text; otherwise a ValueError naming `where`, the byte and the fix."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = data[err.start : err.start + 4]
        raise ValueError(
            f"{where} is not UTF-8 text (byte {err.start + 1}: {bad!r}); save it as UTF-8"
        ) from None


def index_folder(root: Path) -> tuple[list[ImageRecord], tuple[str, ...]]:
    """Discover images with their captions or class labels; returns (records, class_names)."""
    paths = find_images(root)
    if not paths:
        raise ValueError(
            f"no images found under {root} (searched recursively for "
            f"{', '.join(IMAGE_EXTENSIONS)}, case-insensitive); add images or fix the path."
        )
    relative = [p.relative_to(root).as_posix() for p in paths]

    metadata_path = root / METADATA_FILE
    metadata = read_metadata(metadata_path) if metadata_path.is_file() else {}
    captions: list[str | None] = []
    for path, name in zip(paths, relative, strict=True):
        caption = metadata.get(name)
        captions.append(caption if caption is not None else _read_sidecar(path))

    if metadata:
        unknown = sorted(set(metadata) - set(relative))
        if unknown:
            warnings.warn(
                f"{metadata_path} names {len(unknown)} file(s) that are not images under "
                f"{root}, e.g. {unknown[0]!r}; those entries are ignored.",
                stacklevel=3,
            )
    has_captions = any(c is not None for c in captions)
    if has_captions:
        missing = sum(c is None for c in captions)
        if missing:
            warnings.warn(
                f"{missing} of {len(paths)} images under {root} have no caption "
                f"(neither in {METADATA_FILE} nor a sidecar .txt); they get the caption ''.",
                stacklevel=3,
            )

    class_names: tuple[str, ...] = ()
    labels = [-1] * len(paths)
    in_subfolders = all(len(Path(name).parts) > 1 for name in relative)
    if not has_captions and in_subfolders:
        folders = [Path(name).parts[0] for name in relative]
        class_names = tuple(sorted(set(folders)))
        label_of = {name: i for i, name in enumerate(class_names)}
        labels = [label_of[folder] for folder in folders]

    records = [
        ImageRecord(path=path, caption=caption or "", label=label)
        for path, caption, label in zip(paths, captions, labels, strict=True)
    ]
    return records, class_names


class ImageFolderDataset(Dataset[dict[str, torch.Tensor | str | int]]):
    """Images under `root` as dicts: image (3,R,R) in [-1,1], caption, label, index.

    `split` picks the training files, the held-out files (`data.split`: a fixed fraction chosen
    by a hash of each relative path) or all of them; `fit` says how each becomes a square.
    With `crops_per_image` K > 1 each file gives K items (item i is crop i % K of file i // K),
    each at its own seeded position: many native-resolution crops from a few large photos.
    An unreadable file raises :class:`ImageLoadError` naming it; `data.cached.CachedDataset`
    finds such files once, counts them and leaves them out, so no other item takes their place.
    """

    def __init__(
        self,
        root: str | Path,
        resolution: int | ImageFit,
        crop: Literal["center", "random"] = "center",
        flip: bool = False,
        seed: int = 0,
        split: Split = "all",
        heldout_fraction: float = 0.05,
        crops_per_image: int = 1,
    ) -> None:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"image folder {root} does not exist; check the path.")
        if not root.is_dir():
            raise NotADirectoryError(f"{root} is a file; pass the folder that holds the images.")
        if crop not in ("center", "random"):
            raise ValueError(f"crop must be 'center' or 'random', got {crop!r}.")
        if crops_per_image < 1:
            raise ValueError(f"data.crops_per_image must be >= 1, got {crops_per_image}.")
        if isinstance(resolution, ImageFit):
            self.fit = resolution
        else:
            self.fit = ImageFit(resolution, random=crop == "random", flip=flip, seed=seed)
        self.root = root
        self.resolution = self.fit.resolution
        self.crops_per_image = crops_per_image
        records, self.class_names = index_folder(root)
        names = [record.path.relative_to(root).as_posix() for record in records]
        self.split = split
        self.records = [records[i] for i in split_indices(names, split, heldout_fraction, seed)]
        self._last: tuple[Path, Image.Image] | None = None  # crops of one file come in a row

    def __len__(self) -> int:
        return len(self.records) * self.crops_per_image

    def name(self, index: int) -> str:
        """The relative path of the file of item `index`."""
        record = self.records[index // self.crops_per_image]
        return record.path.relative_to(self.root).as_posix()

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str | int]:
        count = len(self)
        if not -count <= index < count:
            raise IndexError(f"index {index} out of range for {count} images")
        index %= count
        record = self.records[index // self.crops_per_image]
        if self._last is not None and self._last[0] == record.path:
            image = self._last[1]
        else:
            image = load_image(record.path, self.fit.background)
            self._last = (record.path, image)
        return {
            "image": self.fit(image, index),
            "caption": record.caption,
            "label": record.label,
            "index": index,
        }
