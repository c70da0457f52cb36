"""Build the dataset a `DataConfig` describes."""

from pathlib import Path
from typing import Any, Literal

from torch.utils.data import Dataset

from ldmkit.data.cached import CachedDataset
from ldmkit.data.config import DataConfig

Split = Literal["train", "heldout"]


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
        case "folder" | "emoji":
            from ldmkit.data.image_folder import ImageFolderDataset

            dataset = ImageFolderDataset(
                Path(config.path),
                config.resolution,
                crop="random" if config.random_crop and split == "train" else "center",
                flip=config.flip and split == "train",
                seed=config.seed,
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
    if config.cache and split == "train":
        dataset = CachedDataset(dataset, f"preparing {config.kind} data")
    return dataset


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
