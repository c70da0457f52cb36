"""Decoding a latent of any size in tiles, with bounded memory and without seams.

Blending independently decoded tiles leaves seams: each tile's group norms see only that tile,
so neighbours disagree in colour and contrast, and a zero-padded tile edge is not the image.
Here the tiles agree by construction:

1. The part of the decoder at latent resolution (conv_in, the mid block with its attention over
   the whole image, the deepest level's blocks) runs on the whole latent: it is small there.
2. The rest (upsampling, the higher levels, the output head) runs per tile. Each tile is cut
   with a halo as wide as the convolutions ahead of it reach, and the halo is cropped away as
   that reach shrinks, so every kept pixel is computed from the same neighbourhood as in a whole
   decode (tiles on the image border keep the border's zero padding). Where the first of these
   levels hold at most a quarter of the values per latent pixel of the widest later one (Stable
   Diffusion's decoder: 512 channels at twice the latent's side, against 256 at eight times),
   they run in tiles of twice the side, no larger in memory and with less halo per pixel, and
   the later levels' tiles run inside them (`_tiers`). When such a tile covers the whole latent,
   those levels run once, whole, with their own exact statistics.
3. The group norms of the tiled levels cannot see the whole image, so every tile uses the same
   statistics, estimated first by running those levels on a quarter of their input, in tiles
   normalised each by its own statistics, and pooling what every norm computed: a quarter of
   the work of the decode, the memory of one tile. The quarter is the input shrunk to half its
   side where the decoder's factor is 4 or less; for factor 8 and more it is a window of half
   the side in every tile, at full size, since a halved f8 latent is an f16 one and its later
   norms see much less than the image's (measured in docs/results/megapixel.md). The pass runs
   in bfloat16 where the device computes that natively (`estimate_dtype`), which halves its
   time on such CPUs.

Step 3 is the only approximation: a tiled decode differs from the whole one by a small global
change, never by an edge (with the statistics of the whole decode, tiles equal it to float
rounding). docs/results/megapixel.md measures that change against the whole decode, beside
the blending it replaced. Self-attention inside the upsampling levels (no Stable Diffusion or
zoo autoencoder has one) sees only its tile.
"""

import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
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
    convolutions reach `reach` latent pixels beyond its output and hold at most `channels`."""

    run: nn.Module
    scale: int
    reach: float
    channels: int

    @property
    def size(self) -> int:
        """Activation values per latent pixel (channels x pixels): what one tile's memory scales
        with."""
        return self.channels * self.scale**2


Box = tuple[int, int, int, int]  # top, bottom, left, right, in pixels at some scale


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


class _Head(nn.Module):
    """The decoder's output head: norm, SiLU, convolution."""

    def __init__(self, norm: nn.Module, conv: nn.Module) -> None:
        super().__init__()
        self.norm, self.conv = norm, conv

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv(F.silu(self.norm(h)))


def _widest(module: nn.Module) -> int:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return max((max(c.in_channels, c.out_channels) for c in convs), default=0)


def _segments(decoder: Decoder) -> list[Segment]:
    """The tiled part, in order, with each step's scale, reach and width."""
    segments: list[Segment] = []
    scale = 1
    for depth, stage in enumerate(reversed(decoder.up)):
        if depth > 0:
            for i, block in enumerate(stage.block):
                assert isinstance(block, ResnetBlock)
                segments.append(Segment(block, scale, 2 / scale, _widest(block)))
                if len(stage.attn) > 0:
                    attn: nn.Module = stage.attn[i]  # type: ignore[index]
                    segments.append(Segment(attn, scale, 0.0, _widest(attn)))
        if hasattr(stage, "upsample"):
            upsample: Upsample = stage.upsample
            scale *= 2
            segments.append(Segment(upsample, scale, 1 / scale, _widest(upsample)))

    head = _Head(decoder.norm_out, decoder.conv_out)
    segments.append(Segment(head, scale, 1 / scale, _widest(head)))
    return segments


Tiers = list[tuple[list[Segment], int]]  # groups of segments, each with its tile side


def _tiers(segments: list[Segment], tile: int) -> Tiers:
    """The segments in groups, each with its tile side. The leading segments whose activations
    per latent pixel are at most a quarter of the largest (for Stable Diffusion's decoder: the
    first upsampling and the 512-channel level at twice the latent's resolution) run in tiles of
    twice the side, which hold no more than a tile of the rest, so they pay less halo; the rest
    runs in tiles of `tile` inside them."""
    largest = max(s.size for s in segments)
    outer = 0
    while outer < len(segments) and 4 * segments[outer].size <= largest:
        outer += 1
    if outer == 0:
        return [(segments, tile)]
    return [(segments[:outer], 2 * tile), (segments[outer:], tile)]


def _group_norms(tiers: Tiers) -> list[nn.GroupNorm]:
    """The group norms the tiers' segments call, in call order."""
    modules = [s.run for segments, _ in tiers for s in segments]
    return [m for module in modules for m in module.modules() if isinstance(m, nn.GroupNorm)]


def _reach(tiers: Tiers) -> float:
    """How far (latent pixels) the tiers' convolutions reach beyond their output."""
    return sum(s.reach for segments, _ in tiers for s in segments)


class _Moments:
    """Running per (sample, group) count, sum and sum of squares of each norm's inputs."""

    def __init__(self) -> None:
        self.sums: list[tuple[torch.Tensor, torch.Tensor, int]] = []

    def add(self, index: int, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
        """Norm `index` saw `count` values per (sample, group), of this mean and variance."""
        mean, var = mean.double(), var.double()
        moments = (mean * count, (var + mean.square()) * count, count)
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


def _recording_forward(
    norm: nn.GroupNorm, moments: _Moments, index: int, x: torch.Tensor
) -> torch.Tensor:
    """The norm as usual, keeping the per-group statistics it computes anyway (in float32 for a
    bfloat16 input too, as autocast runs it), so recording costs no extra pass."""
    b, c = x.shape[:2]
    pixels = x.numel() // (b * c)
    weight = norm.weight.float() if norm.weight is not None else None
    bias = norm.bias.float() if norm.bias is not None else None
    # A crop of a channels-last map stays channels-last (the layout decoding runs in).
    layout = torch.channels_last if x.dim() == 4 and x.stride(1) == 1 else torch.contiguous_format
    out, mean, rstd = torch.native_group_norm(
        x.contiguous(memory_format=layout), weight, bias, b, c, pixels, norm.num_groups, norm.eps
    )
    moments.add(index, mean, rstd.double().pow(-2) - norm.eps, c // norm.num_groups * pixels)
    return out


@contextmanager
def _recording(norms: list[nn.GroupNorm], moments: _Moments) -> Iterator[None]:
    """Add the statistics of each norm's input to `moments` while the block runs."""
    for i, norm in enumerate(norms):
        norm.forward = partial(_recording_forward, norm, moments, i)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for norm in norms:
            del norm.forward


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


def _around(core: Box, scale: int, reach: float, image: tuple[int, int]) -> Box:
    """The latent box `core` at `scale`, widened by what `reach` latent pixels take there and
    clipped to the image: at the image's border a convolution's zero padding is the whole
    decode's too."""
    pixels = math.ceil(reach * scale - 1e-9)
    top, bottom, left, right = (side * scale for side in core)
    height, width = (side * scale for side in image)
    return (
        max(top - pixels, 0),
        min(bottom + pixels, height),
        max(left - pixels, 0),
        min(right + pixels, width),
    )


def _crop(x: torch.Tensor, have: Box, want: Box) -> torch.Tensor:
    assert want[0] >= have[0] and want[1] <= have[1] and want[2] >= have[2] and want[3] <= have[3]
    return x[..., want[0] - have[0] : want[1] - have[0], want[2] - have[2] : want[3] - have[2]]


def _run_region(
    segments: list[Segment],
    x: torch.Tensor,
    have: Box,
    scale: int,
    core: Box,
    image: tuple[int, int],
    margin: float = 0.0,
) -> tuple[torch.Tensor, Box]:
    """Run `segments` for the latent box `core` of an `image`-sized latent, from `x`, which holds
    the box `have` at `scale` (the segments' input scale). The input is cut with the halo the
    segments reach into, cropped after each segment to what the rest still needs; the output
    keeps `margin` latent pixels around the core (what later segments reach into). Returns it
    and the box it holds."""
    remaining = [sum(s.reach for s in segments[i:]) + margin for i in range(len(segments) + 1)]
    box = _around(core, scale, remaining[0], image)
    x = _crop(x, have, box)
    for i, segment in enumerate(segments):
        x = segment.run(x)
        grown = segment.scale // scale
        box, scale = (box[0] * grown, box[1] * grown, box[2] * grown, box[3] * grown), segment.scale
        keep = _around(core, scale, remaining[i + 1], image)
        x, box = _crop(x, box, keep), keep
    return x, box


def _within(core: Box, tile: int) -> Iterator[Box]:
    """The tiles of at most `tile` latent pixels a side that cover the box `core`."""
    for top, bottom in tile_bounds(core[1] - core[0], tile):
        for left, right in tile_bounds(core[3] - core[2], tile):
            yield core[0] + top, core[0] + bottom, core[2] + left, core[2] + right


def _tiles(
    tiers: Tiers,
    x: torch.Tensor,
    have: Box,
    scale: int,
    core: Box,
    image: tuple[int, int],
) -> Iterator[tuple[Box, torch.Tensor]]:
    """Each tile of the last tier within `core` (latent box) and its decoded pixels: each tier's
    tiles run its segments, and the tiles of the next tier run inside them."""
    (segments, tile), rest = tiers[0], tiers[1:]
    margin = _reach(rest)
    for part in _within(core, tile):
        y, box = _run_region(segments, x, have, scale, part, image, margin)
        if rest:
            yield from _tiles(rest, y, box, segments[-1].scale, part, image)
        else:
            yield part, y


def estimate_dtype(device: torch.device) -> torch.dtype | None:
    """The precision the statistics pass runs in on `device`: bfloat16 where the device computes
    it natively (its convolutions about 2.2x faster than float32's on an AVX-512 BF16 CPU), else
    None (the decode's own). Statistics only need a few digits: docs/results/megapixel.md."""
    return torch.bfloat16 if native_precision(device, "bf16") else None


def _half_size(x: torch.Tensor, scale: int) -> Iterator[tuple[torch.Tensor, Box, Box]]:
    """The map `x` (at `scale` pixels per latent pixel) shrunk to half its side, as one image:
    (pixels, the box they hold, the latent box of the image)."""
    image = (math.ceil(x.shape[-2] / scale / 2), math.ceil(x.shape[-1] / scale / 2))
    small = F.interpolate(x, size=(image[0] * scale, image[1] * scale), mode="area")
    yield small, (0, small.shape[-2], 0, small.shape[-1]), (0, image[0], 0, image[1])


def _windows(x: torch.Tensor, scale: int, tile: int) -> Iterator[tuple[torch.Tensor, Box, Box]]:
    """A window of half the side at the centre of each tile of the map `x`, at full size, each
    as an image of its own: a quarter of the area, spread over the whole map."""
    image = (0, x.shape[-2] // scale, 0, x.shape[-1] // scale)
    for top, bottom, left, right in _within(image, tile):
        rows, cols = max(1, (bottom - top) // 2), max(1, (right - left) // 2)
        top, left = top + (bottom - top - rows) // 2, left + (right - left - cols) // 2
        window = x[..., top * scale : (top + rows) * scale, left * scale : (left + cols) * scale]
        yield window, (0, rows * scale, 0, cols * scale), (0, rows, 0, cols)


def _estimated_statistics(
    tiers: Tiers,
    x: torch.Tensor,
    scale: int,
    dtype: torch.dtype | None = None,
    windows: bool = False,
) -> list[Statistics]:
    """The statistics of the tiers' group norms, pooled over a quarter of the work of decoding
    `x` (at `scale` pixels per latent pixel), in tiles each normalised by its own statistics, as
    an untiled decode of them would be: `x` shrunk to half its side, or with `windows`, a window
    of half the side in each tile, at full size. The convolutions in `dtype` (autocast) when
    given. Moments are summed in float64."""
    norms = _group_norms(tiers)
    moments = _Moments()
    lower = torch.autocast(x.device.type, dtype) if dtype is not None else nullcontext()
    images = _windows(x, scale, tiers[-1][1]) if windows else _half_size(x, scale)
    with _recording(norms, moments), lower:
        for pixels, have, core in images:
            for _ in _tiles(tiers, pixels, have, scale, core, (core[1], core[3])):
                pass
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
    image, core = (height, width), (0, height, 0, width)
    h = _whole_part(decoder, z)
    tiers, scale = _tiers(_segments(decoder), tile), 1
    dtype = estimate_dtype(z.device) if statistics == "auto" else statistics
    have: Box = (0, height, 0, width)
    if len(tiers) > 1 and height <= tiers[0][1] and width <= tiers[0][1]:
        # The first tier fits whole: it runs with its own exact statistics, once.
        first, margin = tiers.pop(0)[0], _reach(tiers)
        h, have = _run_region(first, h, have, scale, core, image, margin)
        scale = first[-1].scale
    last = tiers[-1][0][-1].scale  # output pixels per latent pixel, before the patch
    windows = last * decoder.patch >= 8  # the decoder's factor
    estimated = _estimated_statistics(tiers, h, scale, dtype, windows)  # type: ignore[arg-type]
    norms = _group_norms(tiers)
    out: torch.Tensor | None = None
    with _fixed(norms, estimated):
        for (top, bottom, left, right), part in _tiles(tiers, h, have, scale, core, image):
            if out is None:
                out = part.new_empty(*part.shape[:2], height * last, width * last)
            out[..., top * last : bottom * last, left * last : right * last] = part
    assert out is not None
    return F.pixel_shuffle(out, decoder.patch) if decoder.patch > 1 else out
