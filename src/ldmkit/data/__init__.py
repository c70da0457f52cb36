"""L1: datasets with ground truth (shapes), image folders, Fashion-MNIST, emoji."""

from ldmkit.data.collate import collate
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset
from ldmkit.data.image_folder import ImageFolderDataset, ImageLoadError, load_image
from ldmkit.data.shapes import ShapesConfig, ShapesDataset, ShapesSample, render_shapes

__all__ = [
    "DataConfig",
    "ImageFolderDataset",
    "ImageLoadError",
    "ShapesConfig",
    "ShapesDataset",
    "ShapesSample",
    "build_dataset",
    "collate",
    "load_image",
    "render_shapes",
]
