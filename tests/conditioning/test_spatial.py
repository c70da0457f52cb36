"""Spatial conditions: the bicubic degradation, random hole masks and the config's channels."""

import pytest
import torch

from ldmkit.conditioning import (
    SpatialConfig,
    bicubic_degrade,
    bicubic_upsample,
    colourise,
    masked_images,
    one_hot_map,
    random_masks,
    resize_condition,
)


def test_channels_per_kind() -> None:
    assert SpatialConfig(kind="super_resolution").channels(4) == 3
    assert SpatialConfig(kind="inpaint").channels(4) == 5


def test_bad_kind_and_factor_are_errors() -> None:
    with pytest.raises(ValueError, match=r"spatial\.kind"):
        SpatialConfig(kind="colour")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="factor"):
        SpatialConfig(factor=1)


def test_degrade_then_upsample_keeps_smooth_images_and_loses_detail() -> None:
    ramp = torch.linspace(-1, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64)
    low = bicubic_degrade(ramp, 4)
    assert low.shape == (1, 3, 16, 16)
    assert (bicubic_upsample(low, 4) - ramp)[..., 8:-8].abs().max() < 0.02
    checker = (torch.arange(64).view(-1, 1) + torch.arange(64)) % 2 * 2.0 - 1
    assert bicubic_degrade(checker.expand(1, 3, 64, 64), 4).abs().max() < 0.1  # averaged away
    with pytest.raises(ValueError, match="divisible"):
        bicubic_degrade(ramp[..., :63], 4)


def test_masks_are_binary_deterministic_and_varied() -> None:
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(64)]  # noqa: E731
    masks = random_masks(gens(), 32)
    assert masks.shape == (64, 1, 32, 32)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(masks, random_masks(gens(), 32))
    cover = masks.mean((1, 2, 3))
    assert 0.15 < cover.mean() < 0.4 and cover.max() < 0.7 and cover.min() > 0
    assert len({tuple(m.flatten().tolist()) for m in masks}) == 64


def test_masked_images_are_grey_in_the_hole() -> None:
    images = torch.rand(2, 3, 8, 8) * 2 - 1
    masks = torch.zeros(2, 1, 8, 8)
    masks[..., 2:5, 2:5] = 1
    out = masked_images(images, masks)
    assert (out[..., 2:5, 2:5] == 0).all() and torch.equal(out[..., 6:, :], images[..., 6:, :])


def test_resize_condition_by_area_down_and_keeps_equal_sizes() -> None:
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :] = 1
    assert torch.equal(resize_condition(mask, (8, 8)), mask)
    assert resize_condition(mask, (2, 2)).flatten().tolist() == [1.0, 1.0, 0.0, 0.0]


def test_one_hot_maps_check_their_ids_and_colourise_shows_classes() -> None:
    semantic = torch.tensor([[[0, 1], [2, 2]]])
    hot = one_hot_map(semantic, 3)
    assert hot.shape == (1, 3, 2, 2) and torch.equal(hot.argmax(1), semantic)
    with pytest.raises(ValueError, match=r"outside 0\.\.2"):
        one_hot_map(semantic + 1, 3)
    shown = colourise(semantic, 3)
    assert shown.shape == (1, 3, 2, 2) and (shown[0, :, 0, 0] == 0).all()
    assert not torch.equal(shown[0, :, 0, 1], shown[0, :, 1, 0])


def test_coordinate_grid_holds_x_then_y() -> None:
    from ldmkit.conditioning import coordinate_grid

    grid = coordinate_grid(torch.zeros(2, 3, 4, 5))
    assert grid.shape == (2, 2, 4, 5)
    assert grid[0, 0, 0].tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]  # x along a row
    assert grid[0, 1, :, 0].tolist() == pytest.approx([-1.0, -1 / 3, 1 / 3, 1.0])  # y down
    assert torch.equal(grid[0], grid[1])
