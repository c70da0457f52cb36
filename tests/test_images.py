"""Pictures: grids keep every image in place; labelled grids add a label column per row."""

import numpy as np
import pytest
import torch

from ldmkit.images import image_grid, labelled_grid


def test_image_grid_places_images_in_rows() -> None:
    images = torch.stack([torch.full((3, 4, 4), v) for v in (-1.0, 0.0, 1.0)])
    grid = np.asarray(image_grid(images, nrow=2, padding=1))
    assert grid.shape == (2 * 5 + 1, 2 * 5 + 1, 3)
    assert (grid[1:5, 1:5] == 0).all() and (grid[1:5, 6:10] == 128).all()
    assert (grid[6:10, 1:5] == 255).all()  # third image starts the second row


def test_labelled_grid_adds_labels_and_splits_into_panels() -> None:
    images = torch.rand(12, 3, 8, 8) * 2 - 1
    labels = [f"class {i}" for i in range(6)]
    one = labelled_grid(images, 2, labels)
    plain = image_grid(images, 2)
    assert one.height == plain.height and one.width > plain.width  # label column on the left
    panels = labelled_grid(images, 2, labels, blocks=3)
    assert panels.height == image_grid(images[:4], 2).height  # two rows per panel
    with pytest.raises(ValueError, match="do not fill 6 rows of 3"):
        labelled_grid(images, 3, labels)
