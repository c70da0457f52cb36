"""Apply a spatial function tile by tile and blend the overlaps, so memory stays bounded and
no seam shows: each output pixel is the weighted mean of the tiles covering it, the weights
ramping linearly to near zero across the overlap."""

from collections.abc import Callable

import torch


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size `tile` covering 0..length, neighbours sharing >= `overlap`."""
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < tile, got {tile} and {overlap}")
    if length <= tile:
        return [0]
    stride = tile - overlap
    count = -(-(length - tile) // stride) + 1  # ceil: the last tile ends exactly at `length`
    starts = [round(i * (length - tile) / (count - 1)) for i in range(count)]
    return starts


def ramp(size: int, overlap: int, device: torch.device | None = None) -> torch.Tensor:
    """(size,) weights rising linearly over the first `overlap` entries and falling over the
    last `overlap`, strictly positive, 1 in between."""
    position = torch.arange(size, dtype=torch.float32, device=device) + 0.5
    if overlap == 0:
        return torch.ones(size, device=device)
    return torch.minimum(position, size - position).div(overlap).clamp(max=1.0)


def tiled_apply(
    fn: Callable[[slice, slice], torch.Tensor],
    height: int,
    width: int,
    tile: int,
    overlap: int,
    scale: int = 1,
) -> torch.Tensor:
    """Blend fn(rows, cols) over overlapping tiles of a (height, width) input.

    `fn` gets the input window's row and column slices and returns its output (B, C, h*scale,
    w*scale); the result is (B, C, height*scale, width*scale). One tile (no blending) when the
    input fits in `tile`.
    """
    rows, cols = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    if len(rows) == 1 and len(cols) == 1:
        return fn(slice(0, height), slice(0, width))
    out = weight_sum = None
    for y0 in rows:
        for x0 in cols:
            window = (slice(y0, min(y0 + tile, height)), slice(x0, min(x0 + tile, width)))
            y = fn(*window)
            if out is None:
                out = y.new_zeros(*y.shape[:2], height * scale, width * scale)
                weight_sum = torch.zeros(height * scale, width * scale, device=y.device)
            h, w = y.shape[-2:]
            ramps = ramp(h, overlap * scale, y.device), ramp(w, overlap * scale, y.device)
            weight = ramps[0][:, None] * ramps[1]
            target = (
                slice(y0 * scale, y0 * scale + h),
                slice(x0 * scale, x0 * scale + w),
            )
            out[..., target[0], target[1]] += y * weight.to(y.dtype)
            weight_sum[target[0], target[1]] += weight  # type: ignore[index]
    assert out is not None and weight_sum is not None
    return out / weight_sum.to(out.dtype)
