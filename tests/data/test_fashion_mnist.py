"""IDX reading, Fashion-MNIST preparation and dataset; prepare_dataset dispatch."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from ldmkit.data.fashion_mnist import (
    DEFAULT_SOURCE,
    FASHION_MNIST_CLASSES,
    IDX_FILES,
    FashionMNISTDataset,
    prepare_fashion_mnist,
    read_idx,
)
from ldmkit.data.prepare import DATASETS, prepare_dataset

NEEDS_DEBIAN = "Fashion-MNIST is not installed; apt-get install dataset-fashion-mnist"


def write_idx(path: Path, array: np.ndarray, type_code: int = 0x08, compress: bool = True) -> Path:
    """Write `array` as an IDX file (big-endian header and data)."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def fake_source(folder: Path, train: int = 6, test: int = 4) -> Path:
    """A Debian-like folder of tiny IDX files; image k is filled with value 10 * k."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("test", test)):
        images = (np.arange(count, dtype=np.uint8)[:, None, None] * 10).repeat(28, 1).repeat(28, 2)
        labels = np.arange(count, dtype=np.uint8) % 10
        write_idx(folder / IDX_FILES[split][0], images)
        write_idx(folder / IDX_FILES[split][1], labels)
    return folder


def test_read_idx_plain_gzip_and_wide_types(tmp_path: Path) -> None:
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.gz", array)), array)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a", array, compress=False)), array)
    wide = np.array([1, -2, 70000], dtype=np.int32)
    out = read_idx(write_idx(tmp_path / "w", wide, type_code=0x0C))
    assert out.dtype == np.int32 and out.tolist() == [1, -2, 70000]


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    (tmp_path / "magic").write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="two zero bytes"):
        read_idx(tmp_path / "magic")
    (tmp_path / "type").write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="unknown IDX data type 0x07"):
        read_idx(tmp_path / "type")
    full = write_idx(tmp_path / "full", np.zeros((4, 5), np.uint8), compress=False).read_bytes()
    (tmp_path / "short").write_bytes(full[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b" + b"garbage")
    with pytest.raises(ValueError, match="corrupt gzip"):
        read_idx(tmp_path / "bad.gz")
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "absent")


def test_prepare_writes_npz_and_classes(tmp_path: Path) -> None:
    out = prepare_fashion_mnist(tmp_path / "out", source=fake_source(tmp_path / "src"))
    assert sorted(p.name for p in out.iterdir()) == ["classes.json", "test.npz", "train.npz"]
    assert json.loads((out / "classes.json").read_text()) == list(FASHION_MNIST_CLASSES)
    with np.load(out / "train.npz") as archive:
        assert archive["images"].shape == (6, 28, 28) and archive["images"].dtype == np.uint8
        assert archive["labels"].tolist() == [0, 1, 2, 3, 4, 5]
    # Running again replaces the files in place and leaves no temporary files behind.
    prepare_fashion_mnist(out, source=tmp_path / "src")
    assert len(list(out.iterdir())) == 3


def test_missing_source_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        prepare_fashion_mnist(tmp_path / "out", source=tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        FashionMNISTDataset(tmp_path / "nothing", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"neither train\.npz"):
        FashionMNISTDataset(tmp_path / "empty", "train")


@pytest.mark.parametrize("from_npz", [True, False])
def test_dataset_items(tmp_path: Path, from_npz: bool) -> None:
    source = fake_source(tmp_path / "src")
    root = prepare_fashion_mnist(tmp_path / "out", source=source) if from_npz else source
    dataset = FashionMNISTDataset(root, "test")
    assert len(dataset) == 4
    item = dataset[3]
    image = item["image"]
    assert isinstance(image, torch.Tensor)
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert (item["label"], item["caption"], item["index"]) == (3, "Dress", 3)
    assert torch.all(image[:, :2] == -1.0) and torch.all(image[:, :, -2:] == -1.0)  # 2 px pad
    assert torch.allclose(image[:, 2:30, 2:30], torch.tensor(30 / 127.5 - 1.0))
    assert torch.equal(image[0], image[2])  # grayscale repeated


@pytest.mark.parametrize("resolution", [28, 16, 64])
def test_dataset_resolutions(tmp_path: Path, resolution: int) -> None:
    dataset = FashionMNISTDataset(fake_source(tmp_path), "train", resolution=resolution)
    image = dataset[5]["image"]
    assert isinstance(image, torch.Tensor)
    assert image.shape == (3, resolution, resolution)
    assert image.min() >= -1.0 and image.max() <= 1.0


def test_dataset_argument_errors(tmp_path: Path) -> None:
    source = fake_source(tmp_path)
    with pytest.raises(ValueError, match="split must be one of train, test"):
        FashionMNISTDataset(source, "validation")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="resolution"):
        FashionMNISTDataset(source, "train", resolution=0)


def test_prepare_dataset_rejects_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid names: fashion-mnist, emoji"):
        prepare_dataset("cifar", tmp_path)
    assert DATASETS == ("fashion-mnist", "emoji")


def test_real_fashion_mnist_from_debian_package(tmp_path: Path) -> None:
    if not (DEFAULT_SOURCE / IDX_FILES["test"][0]).is_file():
        pytest.skip(NEEDS_DEBIAN)
    test = FashionMNISTDataset(DEFAULT_SOURCE, "test")
    assert len(test) == 10_000
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert (test[0]["label"], test[0]["caption"]) == (9, "Ankle boot")


def test_real_prepare_via_dispatch(tmp_path: Path) -> None:
    if not (DEFAULT_SOURCE / IDX_FILES["train"][0]).is_file():
        pytest.skip(NEEDS_DEBIAN)
    out = prepare_dataset("fashion-mnist", tmp_path / "fm")
    train = FashionMNISTDataset(out, "train")
    assert len(train) == 60_000 and len(FashionMNISTDataset(out, "test")) == 10_000
    assert train.images.dtype == np.uint8 and int(train.images.max()) == 255
