"""Decoding a latent of any size in tiles, with bounded memory and without seams.

Blending independently decoded tiles leaves seams: each tile's group norms see only that tile,
so neighbours disagree in colour and contrast, and a zero-padded tile edge is not the image.
Here the tiles agree by construction:

1. The part of the decoder at latent resolution (conv_in, the mid block with its attention over
   the whole image, the deepest level's blocks) runs on the whole latent: it is small there.
2. The rest (upsampling, the higher levels, the output head) runs per tile. Each tile is cut
   with a halo as wide as the convolutions ahead of it reach, and the halo is cropped away as
   that reach shrinks, so every kept pixel is computed from the same neighbourhood as in a whole
   decode (tiles on the image border keep the border's zero padding).
3. The group norms of that part cannot see the whole image, so every tile uses the same
   statistics, estimated first by running the tiled part on the feature map shrunk by half (by
   area), in tiles normalised each by its own statistics, and pooling what every norm saw: a
   quarter of the work of the decode, the memory of one tile. It runs in bfloat16 where the
   device computes that natively (`estimate_dtype`), which halves its time on such CPUs.

Step 3 is the only approximation: a tiled decode differs from the whole one by a small global
change, never by an edge (with the statistics of the whole decode, tiles equal it to float
rounding). docs/results/megapixel.md measures that change against the whole decode, beside
the blending it replaced. Self-attention inside the upsampling levels (no Stable Diffusion or
zoo autoencoder has one) sees only its tile.
"""

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from itertools import pairwise
from types import MethodType

import torch
import torch.nn.functional as F
from torch import nn

from ldmkit.autoencoder.decoder import Decoder
from ldmkit.nn import ResnetBlock, Upsample
from ldmkit.precision import native_precision

Statistics = tuple[torch.Tensor, torch.Tensor]  # per (sample, group): mean and variance


@dataclass(frozen=True)
class Segment:
    """One step of the tiled part: `run` at `scale` output pixels per latent pixel, whose
    convolutions reach `reach` latent pixels beyond its output."""

    run: Callable[[torch.Tensor], torch.Tensor]
    scale: int
    reach: float


def tile_bounds(length: int, tile: int) -> list[tuple[int, int]]:
    """[start, end) cores of ceil(length / tile) near-equal tiles covering 0..length."""
    count = max(1, math.ceil(length / tile))
    bounds = [round(i * length / count) for i in range(count + 1)]
    return list(pairwise(bounds))


def _whole_part(decoder: Decoder, z: torch.Tensor) -> torch.Tensor:
    """conv_in, the mid block and the deepest level's blocks, at latent resolution."""
    h = decoder.mid(decoder.conv_in(z))
    deepest = decoder.up[-1]
    for i, block in enumerate(deepest.block):
        h = block(h)
        if len(deepest.attn) > 0:
            h = deepest.attn[i](h)
    return h


def _segments(decoder: Decoder) -> list[Segment]:
    """The tiled part, in order, with each step's scale and reach."""
    segments: list[Segment] = []
    scale = 1
    for depth, stage in enumerate(reversed(decoder.up)):
        if depth > 0:
            for i, block in enumerate(stage.block):
                assert isinstance(block, ResnetBlock)
                segments.append(Segment(block, scale, 2 / scale))
                if len(stage.attn) > 0:
                    segments.append(Segment(stage.attn[i], scale, 0.0))
        if hasattr(stage, "upsample"):
            upsample: Upsample = stage.upsample
            scale *= 2
            segments.append(Segment(upsample, scale, 1 / scale))

    def head(h: torch.Tensor) -> torch.Tensor:
        return decoder.conv_out(F.silu(decoder.norm_out(h)))

    segments.append(Segment(head, scale, 1 / scale))
    return segments


def _group_norms(decoder: Decoder) -> list[nn.GroupNorm]:
    """The group norms of the tiled part, in call order."""
    modules: list[nn.Module] = [
        s.run for s in _segments(decoder)[:-1] if isinstance(s.run, nn.Module)
    ]
    modules.append(decoder.norm_out)
    return [m for module in modules for m in module.modules() if isinstance(m, nn.GroupNorm)]


class _Moments:
    """Running per (sample, group) count, sum and sum of squares of each norm's inputs."""

    def __init__(self) -> None:
        self.sums: list[tuple[torch.Tensor, torch.Tensor, int]] = []

    def add(self, index: int, norm: nn.GroupNorm, x: torch.Tensor) -> None:
        # Per channel first (no copy of the activation), then per group in float64.
        var, mean = torch.var_mean(x.detach().float(), dim=(-2, -1), correction=0)
        b, pixels = x.shape[0], x.shape[-2] * x.shape[-1]
        mean, var = (
            mean.double().reshape(b, norm.num_groups, -1),
            var.double().reshape(b, norm.num_groups, -1),
        )
        per_group = mean.shape[-1] * pixels
        moments = (mean.sum(-1) * pixels, (var + mean.square()).sum(-1) * pixels, per_group)
        if index == len(self.sums):
            self.sums.append(moments)
        else:
            total, squares, count = self.sums[index]
            self.sums[index] = (total + moments[0], squares + moments[1], count + moments[2])

    def statistics(self) -> list[Statistics]:
        """Mean and (biased) variance of everything added, per norm."""
        out = []
        for total, squares, count in self.sums:
            mean = total / count
            out.append((mean.float(), (squares / count - mean.square()).clamp(min=0).float()))
        return out


@contextmanager
def _recording(norms: list[nn.GroupNorm], moments: _Moments) -> Iterator[None]:
    """Add each norm's input to `moments` while the block runs."""
    handles = [
        norm.register_forward_pre_hook(
            lambda m, args, i=i: moments.add(i, m, args[0])  # type: ignore[misc]
        )
        for i, norm in enumerate(norms)
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _fixed_forward(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    mean, var = norm.fixed_statistics  # type: ignore[attr-defined]
    per_group = x.shape[1] // norm.num_groups
    scale = torch.rsqrt(var + norm.eps).repeat_interleave(per_group, dim=1)  # (B, C)
    shift = -mean.repeat_interleave(per_group, dim=1) * scale
    if norm.affine:
        scale, shift = scale * norm.weight, shift * norm.weight + norm.bias
    return torch.addcmul(shift[..., None, None].to(x.dtype), x, scale[..., None, None].to(x.dtype))


@contextmanager
def _fixed(norms: list[nn.GroupNorm], statistics: list[Statistics]) -> Iterator[None]:
    """Normalise with the given statistics instead of each input's own while the block runs."""
    for norm, stats in zip(norms, statistics, strict=True):
        norm.fixed_statistics = stats  # type: ignore[attr-defined]
        norm.forward = MethodType(_fixed_forward, norm)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for norm in norms:
            del norm.forward, norm.fixed_statistics  # type: ignore[attr-defined]


def _run_tile(
    segments: list[Segment], h: torch.Tensor, rows: tuple[int, int], cols: tuple[int, int]
) -> torch.Tensor:
    """Decode the core rows x cols (latent pixels) of the whole part's output `h`: cut with the
    halo the segments reach into, cropped after each segment to what the rest still needs."""
    sides = (rows[0] > 0, rows[1] < h.shape[-2], cols[0] > 0, cols[1] < h.shape[-1])
    remaining = [sum(s.reach for s in segments[i:]) for i in range(len(segments) + 1)]

    def needed(reach: float, scale: int) -> list[int]:
        pixels = math.ceil(reach * scale - 1e-9)
        return [pixels if interior else 0 for interior in sides]

    top, bottom, left, right = needed(remaining[0], 1)
    x = h[..., rows[0] - top : rows[1] + bottom, cols[0] - left : cols[1] + right]
    have, scale = [top, bottom, left, right], 1
    for i, segment in enumerate(segments):
        x = segment.run(x)
        have = [pixels * segment.scale // scale for pixels in have]
        scale = segment.scale
        keep = needed(remaining[i + 1], scale)
        cut = [a - k for a, k in zip(have, keep, strict=True)]
        x = x[..., cut[0] : x.shape[-2] - cut[1], cut[2] : x.shape[-1] - cut[3]]
        have = keep
    return x


def estimate_dtype(device: torch.device) -> torch.dtype | None:
    """The precision the statistics pass runs in on `device`: bfloat16 where the device computes
    it natively (its convolutions about 2.2x faster than float32's on an AVX-512 BF16 CPU), else
    None (the decode's own). Statistics only need a few digits: docs/results/megapixel.md."""
    return torch.bfloat16 if native_precision(device, "bf16") else None


def _estimated_statistics(
    segments: list[Segment],
    norms: list[nn.GroupNorm],
    h: torch.Tensor,
    tile: int,
    dtype: torch.dtype | None = None,
) -> list[Statistics]:
    """The group norms' statistics of the tiled part, pooled over the tiles of `h` shrunk by
    half (by area), each tile normalised by its own, as an untiled decode of it would be; the
    convolutions in `dtype` (autocast) when given. Moments are summed in float64."""
    small = F.interpolate(
        h, size=(math.ceil(h.shape[-2] / 2), math.ceil(h.shape[-1] / 2)), mode="area"
    )
    moments = _Moments()
    lower = torch.autocast(h.device.type, dtype) if dtype is not None else nullcontext()
    with _recording(norms, moments), lower:
        for rows in tile_bounds(small.shape[-2], tile):
            for cols in tile_bounds(small.shape[-1], tile):
                _run_tile(segments, small, rows, cols)
    return moments.statistics()


def decode_in_tiles(
    decoder: Decoder, z: torch.Tensor, tile: int, statistics: torch.dtype | str | None = "auto"
) -> torch.Tensor:
    """decoder(z) computed in tiles of at most `tile` latent pixels a side (see the module's
    description); one whole decode when the latent fits in one tile. `statistics`: the
    precision of the statistics pass ("auto": `estimate_dtype`; None: the decode's own)."""
    if tile < 1:
        raise ValueError(f"tile must be >= 1 latent pixel, got {tile}")
    height, width = z.shape[-2:]
    if height <= tile and width <= tile:
        return decoder(z)
    h = _whole_part(decoder, z)
    segments, norms = _segments(decoder), _group_norms(decoder)
    dtype = estimate_dtype(z.device) if statistics == "auto" else statistics
    estimated = _estimated_statistics(segments, norms, h, tile, dtype)  # type: ignore[arg-type]
    scale = segments[-1].scale
    out: torch.Tensor | None = None
    with _fixed(norms, estimated):
        for rows in tile_bounds(height, tile):
            for cols in tile_bounds(width, tile):
                part = _run_tile(segments, h, rows, cols)
                if out is None:
                    out = part.new_empty(*part.shape[:2], height * scale, width * scale)
                out[..., rows[0] * scale : rows[1] * scale, cols[0] * scale : cols[1] * scale] = (
                    part
                )
    assert out is not None
    return F.pixel_shuffle(out, decoder.patch) if decoder.patch > 1 else out
