"""A folder of images (recursive) with optional captions or class sub-folders, as a torch Dataset.

Captions come from ``metadata.jsonl`` at the root (one JSON object per line with ``file_name``,
relative to the root, and ``text``) or from sidecar ``.txt`` files next to the images. When there
are no captions and every image sits in a sub-folder, the top-level sub-folder names are the
class labels. Unreadable images are skipped with a :class:`SkippedImageWarning`, never a crash.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
METADATA_FILE = "metadata.jsonl"

_WHITE = (255, 255, 255, 255)
# Modes that carry transparency and are composited over white.
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# 16/32-bit integer grayscale; PNG stores 16-bit samples, 65535 / 257 = 255.
_WIDE_GRAY_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


class ImageLoadError(Exception):
    """An image file that cannot be read or decoded; the message names the file."""


class SkippedImageWarning(UserWarning):
    """Warned once per file that :class:`ImageFolderDataset` skips because it cannot be read."""


def load_image(path: str | Path) -> Image.Image:
    """Read an image file as 8-bit RGB (alpha over white, 16-bit gray scaled, EXIF-rotated)."""
    path = Path(path)
    try:
        with Image.open(path) as opened:
            opened.load()  # decode now so truncated files fail here, not later
            image = ImageOps.exif_transpose(opened)
            return _to_rgb(image, path)
    except ImageLoadError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageLoadError(
            f"cannot read image {path}: {err}. The file is missing, corrupt or not an image; "
            "delete or replace it."
        ) from err


def _to_rgb(image: Image.Image, path: Path) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited over white."""
    mode = image.mode
    if mode == "P":
        # Palette images may carry transparency in the palette or as a single index.
        mode_out = "RGBA" if "transparency" in image.info else "RGB"
        image = image.convert(mode_out)
        mode = image.mode
    if mode == "RGB":
        return image
    if mode in _ALPHA_MODES:
        background = Image.new("RGBA", image.size, _WHITE)
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
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


def resize_and_crop(
    image: Image.Image, resolution: int, left: float = 0.5, top: float = 0.5
) -> Image.Image:
    """Resize the shorter side to `resolution`, then crop a square; (0.5, 0.5) is the centre."""
    width, height = image.size
    scale = resolution / min(width, height)
    new_size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    # Lanczos anti-aliases when shrinking; bicubic is the usual choice when enlarging.
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
    if new_size != image.size:
        image = image.resize(new_size, resample=resample)
    # floor(u * (extra + 1)) maps u ~ U[0, 1) to a uniform integer offset in [0, extra].
    x_extra, y_extra = new_size[0] - resolution, new_size[1] - resolution
    x0 = min(int(left * (x_extra + 1)), x_extra)
    y0 = min(int(top * (y_extra + 1)), y_extra)
    return image.crop((x0, y0, x0 + resolution, y0 + resolution))


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """8-bit RGB PIL image -> float32 tensor (3, H, W) in [-1, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)  # (H, W, 3)
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).to(torch.float32)
    return tensor / 127.5 - 1.0


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

    Random crop and flip draw from ``np.random.default_rng([seed, index])``, so an item is the same
    in every epoch and on every process. ``skipped`` counts unreadable files seen by *this*
    process (each DataLoader worker keeps its own count).
    """

    def __init__(
        self,
        root: str | Path,
        resolution: int,
        crop: Literal["center", "random"] = "center",
        flip: bool = False,
        seed: int = 0,
    ) -> None:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"image folder {root} does not exist; check the path.")
        if not root.is_dir():
            raise NotADirectoryError(f"{root} is a file; pass the folder that holds the images.")
        if not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"resolution must be a positive int, got {resolution!r}.")
        if crop not in ("center", "random"):
            raise ValueError(f"crop must be 'center' or 'random', got {crop!r}.")
        self.root = root
        self.resolution = resolution
        self.crop = crop
        self.flip = flip
        self.seed = seed
        self.records, self.class_names = index_folder(root)
        self._bad: set[int] = set()

    @property
    def skipped(self) -> int:
        """Number of distinct unreadable files met so far (in this process)."""
        return len(self._bad)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str | int]:
        count = len(self.records)
        if not -count <= index < count:
            raise IndexError(f"index {index} out of range for {count} images")
        index %= count
        # On a bad file, fall through to the next readable one so an epoch never crashes.
        for offset in range(count):
            current = (index + offset) % count
            if current in self._bad:
                continue
            record = self.records[current]
            try:
                image = load_image(record.path)
            except ImageLoadError as err:
                self._bad.add(current)
                warnings.warn(f"skipping unreadable image: {err}", SkippedImageWarning, 2)
                continue
            return {
                "image": self._transform(image, current),
                "caption": record.caption,
                "label": record.label,
                "index": current,
            }
        raise ValueError(
            f"none of the {count} images under {self.root} could be read (see the warnings "
            "above); check the folder holds images this can decode (png, jpg, webp, bmp, tif)"
        )

    def _transform(self, image: Image.Image, index: int) -> torch.Tensor:
        """Resize, crop (center or seeded random) and maybe flip; returns (3, R, R) in [-1, 1]."""
        rng = np.random.default_rng([self.seed, index])
        left, top, flip_draw = (float(u) for u in rng.random(3))  # always draw all three
        if self.crop == "center":
            left = top = 0.5
        image = resize_and_crop(image, self.resolution, left=left, top=top)
        if self.flip and flip_draw < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return image_to_tensor(image)
