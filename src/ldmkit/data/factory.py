"""Build the dataset a `DataConfig` describes."""

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from torch.utils.data import Dataset

from ldmkit.data.cached import CachedDataset
from ldmkit.data.config import DataConfig

if TYPE_CHECKING:
    from ldmkit.data.fit import ImageFit

Split = Literal["train", "heldout"]  # folders also know "all" (`data.split`)


def build_dataset(
    config: DataConfig, split: Split = "train", size: int | None = None
) -> Dataset[Any]:
    """The dataset for `config`; `heldout` is data never seen in training where the kind has it."""
    dataset: Dataset[Any]
    match config.kind:
        case "shapes":
            from ldmkit.data.shapes import HELDOUT_SEED, ShapesConfig, ShapesDataset

            shapes = ShapesConfig(
                resolution=config.resolution,
                max_objects=1 if config.single_object else config.max_objects,
                single_object=config.single_object,
            )
            seed = config.seed if split == "train" else HELDOUT_SEED + config.seed
            dataset = ShapesDataset(shapes, size=size or config.size, seed=seed)
        case "shards":
            from ldmkit.data.shards import ShardDataset

            fit = _fit(config, split)
            path = Path(config.path)
            dataset = ShardDataset(path, fit, split, config.crops_per_image, config.shard_url)
        case "folder" | "emoji":
            from ldmkit.data.image_folder import ImageFolderDataset

            fit = _fit(config, split)
            dataset = ImageFolderDataset(
                Path(config.path),
                fit,
                seed=config.seed,
                split=split,
                heldout_fraction=config.heldout_fraction,
                crops_per_image=config.crops_per_image,
            )
        case "fashion-mnist":
            from ldmkit.data.fashion_mnist import DEFAULT_SOURCE, FashionMNISTDataset

            root = Path(config.path) if config.path else DEFAULT_SOURCE
            dataset = FashionMNISTDataset(
                root, "train" if split == "train" else "test", config.resolution
            )
    if size is not None and config.kind != "shapes":
        from torch.utils.data import Subset

        dataset = Subset(dataset, range(min(size, len(dataset))))  # type: ignore[arg-type]
    keep = config.cache and split == "train" and not config.stream
    if config.kind in ("folder", "emoji") or (config.kind == "shards" and keep):
        # Read once: unreadable files are counted and left out (`skipped_files`); the
        # training split is kept in memory when data.cache says so. (Shards were checked
        # when written: read them only to keep them.)
        verb = "preparing" if keep else "checking"
        dataset = CachedDataset(dataset, f"{verb} {split} images", keep_images=keep)
    elif keep:
        dataset = CachedDataset(dataset, f"preparing {config.kind} data")
    return dataset


def _fit(config: DataConfig, split: Split) -> "ImageFit":
    """How the images of a folder or shards become squares (or buckets) for `split`."""
    from ldmkit.data.fit import ImageFit, parse_color

    # Buckets shape training batches; held-out images are scored as squares.
    fit_kind = "crop" if config.fit == "bucket" and split != "train" else config.fit
    return ImageFit(
        config.resolution,
        fit_kind,
        bucket_step=config.bucket_step,
        # Several crops of a file need several positions, held-out ones included.
        random=(config.random_crop and split == "train") or config.crops_per_image > 1,
        flip=config.flip and split == "train",
        seed=config.seed,
        background=parse_color(config.background),
    )


def data_class_names(config: DataConfig) -> tuple[str, ...]:
    """The class names a folder's sub-folders (or its shards) give; () for other data."""
    if config.kind == "folder":
        from ldmkit.data.image_folder import index_folder

        return index_folder(Path(config.path))[1]
    if config.kind == "shards":
        from ldmkit.data.shards import read_index

        return tuple(read_index(Path(config.path))["class_names"])
    return ()


def class_names(kind: str, num_classes: int) -> list[str]:
    """Readable names of the class labels of dataset `kind` ("class i" where it has none)."""
    if kind == "shapes":
        from ldmkit.data.shapes import NUM_CLASSES, class_name

        if num_classes == NUM_CLASSES:
            return [class_name(i) for i in range(num_classes)]
    if kind == "fashion-mnist":
        from ldmkit.data.fashion_mnist import FASHION_MNIST_CLASSES

        if num_classes == len(FASHION_MNIST_CLASSES):
            return list(FASHION_MNIST_CLASSES)
    return [f"class {i}" for i in range(num_classes)]


def split_names(config: DataConfig, split: Split) -> list[str]:
    """The relative paths of a folder's files on side `split` (read from names alone, no
    decoding); [] for the built-in kinds, whose held-out data is generated or shipped apart."""
    if config.kind == "shards":
        from ldmkit.data.shards import read_index

        samples = read_index(Path(config.path))["splits"][split]
        return [sample["file_name"] for sample in samples]
    if config.kind not in ("folder", "emoji"):
        return []
    from ldmkit.data.image_folder import index_folder
    from ldmkit.data.split import split_indices

    root = Path(config.path)
    records, _ = index_folder(root)
    names = [record.path.relative_to(root).as_posix() for record in records]
    return [names[i] for i in split_indices(names, split, config.heldout_fraction, config.seed)]


def data_fingerprint(config: DataConfig) -> str:
    """A hash that changes when the data a config reads changes: the config itself, plus for a
    folder every file's path, size and modification time and every caption and label, and for
    shards their index."""
    import dataclasses
    import hashlib
    import json

    # How the data is read (cached, streamed, from where) does not change it.
    how = ("cache", "stream", "shard_url", "shuffle_buffer", "interleave")
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in how}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    if config.kind in ("folder", "emoji"):
        from ldmkit.data.image_folder import index_folder

        records, names = index_folder(Path(config.path))
        digest.update(json.dumps(names).encode())
        for record in records:
            stat = record.path.stat()
            entry = [str(record.path), stat.st_size, stat.st_mtime_ns, record.caption, record.label]
            digest.update(json.dumps(entry).encode())
    elif config.kind == "shards":
        from ldmkit.data.shards import INDEX, shard_index_folder

        digest.update((shard_index_folder(config.path) / INDEX).read_bytes())
    return digest.hexdigest()
