"""Fashion-MNIST (Xiao et al. 2017) from the Debian package ``dataset-fashion-mnist``.

The package ships the four IDX files (gzip) in ``/usr/share/datasets/fashion-mnist/``.
:func:`prepare_fashion_mnist` turns them into ``train.npz`` / ``test.npz`` (``images`` uint8
(N, 28, 28), ``labels`` uint8 (N,)) plus ``classes.json``; :class:`FashionMNISTDataset` reads
either that folder or the Debian folder directly.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")
INSTALL_HINT = "install it with `apt-get install dataset-fashion-mnist`"

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

Split = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")

# Split name -> (images file, labels file) as shipped by the Debian package.
IDX_FILES: dict[Split, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# IDX type byte -> big-endian numpy dtype ("THE IDX FILE FORMAT", yann.lecun.com/exdb/mnist).
_IDX_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_GZIP_MAGIC = b"\x1f\x8b"
_IMAGE_SIZE = 28


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip or plain) into an array with its declared dtype and shape."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {path} does not exist.")
    with path.open("rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
    try:
        opener = gzip.open if compressed else open
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as err:
        raise ValueError(
            f"{path} is a corrupt gzip file ({err}); re-download or reinstall it."
        ) from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{path} is not an IDX file: it must start with two zero bytes, got {data[:4]!r}."
        )
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        valid = ", ".join(f"0x{code:02X}" for code in _IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX data type 0x{type_code:02X}; valid: {valid}.")
    header_size = 4 + 4 * ndim
    if ndim == 0 or len(data) < header_size:
        raise ValueError(f"{path}: IDX header declares {ndim} dimensions but is truncated.")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header_size != expected:
        raise ValueError(
            f"{path}: header shape {shape} needs {expected} data bytes, file has "
            f"{len(data) - header_size}; the file is truncated or corrupt."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # native byte order, owns its memory


def _check_source(source: Path) -> None:
    """Raise a clear error when the Debian IDX files are not all present in `source`."""
    names = [name for pair in IDX_FILES.values() for name in pair]
    missing = [name for name in names if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST IDX files missing from {source}: {', '.join(missing)}; "
            f"{INSTALL_HINT} (or pass the folder that holds them)."
        )


def load_idx_split(source: Path, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and labels uint8 (N,) of one split, read from the IDX files."""
    _check_source(source)
    images_name, labels_name = IDX_FILES[split]
    images = read_idx(source / images_name)
    labels = read_idx(source / labels_name)
    _validate_split(images, labels, f"{source} ({split})")
    return images, labels


def _validate_split(images: np.ndarray, labels: np.ndarray, where: str) -> None:
    """Check shapes, dtypes and label range of one split."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"{where}: images must be uint8 (N, 28, 28), got {images.dtype} {images.shape}."
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"{where}: {labels.shape} labels do not match {images.shape[0]} images.")
    if labels.size and (labels.min() < 0 or labels.max() >= len(FASHION_MNIST_CLASSES)):
        raise ValueError(f"{where}: labels must lie in [0, {len(FASHION_MNIST_CLASSES) - 1}].")


def _current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(target: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write through a temporary file in the same folder, then os.replace it onto `target`."""
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, kept for os.replace
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False
    )
    temp_path = Path(handle.name)
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_path, 0o666 & ~_current_umask())  # mkstemp makes 0600; act like open()
        os.replace(temp_path, target)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise


def _save_split(target: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Atomically write one split as an uncompressed npz (fast to load, ~47 MB for train)."""
    _atomic_write(target, lambda handle: np.savez(handle, images=images, labels=labels))


def prepare_fashion_mnist(out_dir: str | Path, source: str | Path = DEFAULT_SOURCE) -> Path:
    """Write train.npz, test.npz and classes.json for Fashion-MNIST into `out_dir`; returns it."""
    out_dir, source = Path(out_dir), Path(source)
    _check_source(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        images, labels = load_idx_split(source, split)
        _save_split(out_dir / f"{split}.npz", images, labels)
    classes = json.dumps(list(FASHION_MNIST_CLASSES), indent=1).encode("utf-8")
    _atomic_write(out_dir / "classes.json", lambda handle: handle.write(classes))
    return out_dir


def load_split(root: Path, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of `split` from a prepared folder (npz) or the Debian IDX folder."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"Fashion-MNIST folder {root} does not exist; run prepare_fashion_mnist({str(root)!r})"
            f" or pass {DEFAULT_SOURCE} ({INSTALL_HINT})."
        )
    npz_path = root / f"{split}.npz"
    if npz_path.is_file():
        with np.load(npz_path) as archive:
            if not {"images", "labels"} <= set(archive.files):
                raise ValueError(
                    f"{npz_path} must hold arrays 'images' and 'labels', has {archive.files}; "
                    "re-run prepare_fashion_mnist."
                )
            images, labels = archive["images"], archive["labels"]
        _validate_split(images, labels, str(npz_path))
        return images, labels
    if (root / IDX_FILES[split][0]).is_file():
        return load_idx_split(root, split)
    raise FileNotFoundError(
        f"{root} holds neither {split}.npz nor the IDX file {IDX_FILES[split][0]}; run "
        f"prepare_fashion_mnist({str(root)!r}) or pass {DEFAULT_SOURCE} ({INSTALL_HINT})."
    )


def fit_resolution(image: np.ndarray, resolution: int) -> np.ndarray:
    """28x28 uint8 -> resolution x resolution: pad 2 px black to 32, then bicubic if not 32."""
    if resolution == _IMAGE_SIZE:
        return image
    # Padding to 32 keeps the customary 2 px margin and makes the frame a power of two.
    padded = np.pad(image, 2, mode="constant", constant_values=0)  # (32, 32)
    if resolution == padded.shape[0]:
        return padded
    resized = Image.fromarray(padded, mode="L").resize(
        (resolution, resolution), resample=Image.Resampling.BICUBIC
    )
    return np.asarray(resized, dtype=np.uint8)


class FashionMNISTDataset(Dataset[dict[str, torch.Tensor | str | int]]):
    """Fashion-MNIST as dicts: image (3,R,R) in [-1,1] (gray repeated), caption (class), label."""

    def __init__(
        self,
        root: str | Path,
        split: Split,
        resolution: int = 32,
    ) -> None:
        if split not in IDX_FILES:
            raise ValueError(f"split must be one of {', '.join(IDX_FILES)}, got {split!r}.")
        if not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"resolution must be a positive int, got {resolution!r}.")
        self.root = Path(root)
        self.split = split
        self.resolution = resolution
        self.class_names = FASHION_MNIST_CLASSES
        self.images, self.labels = load_split(self.root, split)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str | int]:
        count = len(self)
        if not -count <= index < count:
            raise IndexError(f"index {index} out of range for {count} images")
        index %= count
        gray = fit_resolution(self.images[index], self.resolution)  # (R, R) uint8
        image = torch.from_numpy(gray.astype(np.float32) / 127.5 - 1.0)
        label = int(self.labels[index])
        return {
            "image": image.unsqueeze(0).expand(3, -1, -1).contiguous(),  # (3, R, R)
            "caption": self.class_names[label],
            "label": label,
            "index": index,
        }
