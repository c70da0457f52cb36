"""Tiled application: exact for pointwise maps, every pixel covered, bounded tile size."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from ldmkit.nn import tiled_apply
from ldmkit.nn.tiling import ramp, tile_starts


@pytest.mark.parametrize(("length", "tile", "overlap"), [(16, 16, 4), (40, 16, 4), (37, 8, 3)])
def test_tiles_cover_everything_with_at_least_the_overlap(length, tile, overlap) -> None:
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + tile == max(length, tile)
    for a, b in itertools.pairwise(starts):
        assert tile - (b - a) >= overlap


def test_bad_tile_is_an_error() -> None:
    with pytest.raises(ValueError, match="overlap < tile"):
        tile_starts(10, 4, 4)


def test_ramp_is_positive_and_flat_in_the_middle() -> None:
    w = ramp(16, 4)
    assert (w > 0).all() and (w[4:12] == 1).all() and w[0] < w[1] < w[2]


def test_pointwise_function_is_exact_at_any_scale() -> None:
    x = torch.randn(2, 3, 37, 50)

    def fn(rows: slice, cols: slice) -> torch.Tensor:
        part = x[..., rows, cols]
        return F.interpolate(part * 2 + 1, scale_factor=4, mode="nearest")

    assert torch.allclose(
        tiled_apply(fn, 37, 50, tile=16, overlap=4, scale=4), fn(*[slice(None)] * 2), atol=1e-5
    )


def test_every_call_sees_at_most_a_tile() -> None:
    x = torch.randn(1, 1, 64, 64)
    sizes = []

    def fn(rows: slice, cols: slice) -> torch.Tensor:
        part = x[..., rows, cols]
        sizes.append(tuple(part.shape[-2:]))
        return part

    out = tiled_apply(fn, 64, 64, tile=16, overlap=4)
    assert max(max(s) for s in sizes) == 16 and len(sizes) == 25
    assert torch.allclose(out, x, atol=1e-6)
