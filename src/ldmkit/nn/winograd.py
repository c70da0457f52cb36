"""3x3 convolution by Winograd's minimal filtering, F(4x4, 3x3) (Lavin and Gray, CVPR 2016).

A stride-1, padding-1 3x3 convolution computes each 4x4 output tile from a 6x6 input tile with 36
multiplications per input-output channel pair instead of 144: the input tile and the kernel are
each carried into a 6x6 transform domain (`B^T d B`, `G g G^T`), multiplied there element-wise
(summed over input channels, so 36 independent matrix products), and carried back (`A^T m A`).
That is 4x fewer multiply-adds than direct convolution, paid for with the two transforms, which
are element-wise and memory-bound.

Two implementations compute the same thing. On the CPU in fp32 it is a C++ operator,
`ldmkit::winograd_conv3x3` (`csrc/winograd.cpp`, built on first use by `ldmkit.nn.native`): one
opaque call that transforms tiles in cache-sized blocks around MKL's batched product. It beat
oneDNN's prepacked direct convolution by 1.8-2.6x on the `small` UNet's shapes on a 2-core AVX2
CPU and made the whole compiled UNet 1.06-1.39x faster, most on the largest maps
(docs/results/latent_diffusion.md). Elsewhere, or without a C++ compiler,
`winograd_conv3x3_torch` writes it in torch operators: slow eager, and compiled inside a whole
network inductor fused its transforms into neighbouring layers badly enough that it did not
pay. Rounding differs from direct convolution's by about 1e-5 relative in fp32, so it is used
only in fp32 (half precision would magnify the transforms' rounding): under autocast or with
half inputs `WinogradConv2d` calls `F.conv2d`.
"""

import functools

import torch
import torch.nn.functional as F
from torch import nn

from ldmkit.nn.native import native_available

# The F(4x4, 3x3) matrices with interpolation points 0, +-1, +-2 and infinity.
_G = (
    (1 / 4, 0.0, 0.0),
    (-1 / 6, -1 / 6, -1 / 6),
    (-1 / 6, 1 / 6, -1 / 6),
    (1 / 24, 1 / 12, 1 / 6),
    (1 / 24, -1 / 12, 1 / 6),
    (0.0, 0.0, 1.0),
)


def _input_transform(d: list[torch.Tensor]) -> list[torch.Tensor]:
    """`B^T d` along one axis: six input rows to six transform-domain rows."""
    d0, d1, d2, d3, d4, d5 = d
    return [
        4 * d0 - 5 * d2 + d4,
        -4 * d1 - 4 * d2 + d3 + d4,
        4 * d1 - 4 * d2 - d3 + d4,
        -2 * d1 - d2 + 2 * d3 + d4,
        2 * d1 - d2 - 2 * d3 + d4,
        4 * d1 - 5 * d3 + d5,
    ]


def _output_transform(m: list[torch.Tensor]) -> list[torch.Tensor]:
    """`A^T m` along one axis: six transform-domain rows to four output rows."""
    m0, m1, m2, m3, m4, m5 = m
    return [
        m0 + m1 + m2 + m3 + m4,
        m1 - m2 + 2 * m3 - 2 * m4,
        m1 + m2 + 4 * m3 + 4 * m4,
        m1 - m2 + 8 * m3 - 8 * m4 + m5,
    ]


def winograd_kernel(weight: torch.Tensor) -> torch.Tensor:
    """`G g G^T` for every channel pair: (C_out, C_in, 3, 3) -> (36, C_in, C_out), in float64
    arithmetic and returned in the weight's dtype."""
    g = torch.tensor(_G, dtype=torch.float64, device=weight.device)
    u = torch.einsum("ai,kcij,bj->abck", g, weight.double(), g)
    return u.reshape(36, weight.shape[1], weight.shape[0]).to(weight.dtype)


def _materialised(x: torch.Tensor) -> torch.Tensor:
    """x stored once, contiguous, in a compiled graph. Without this, inductor inlined the
    producers of the input (normalisation, activation, skip concatenation, up-sampling,
    padding) into the input transform's reads of each tile, and the output transform into its
    consumers' reads; in the `small` UNet at 4x64x64 some of those fused kernels took 3-17 ms a
    call, and the whole step was 1.32x slower than without Winograd (1.04x with both stored)."""
    import torch._inductor.inductor_prims  # registers the prim used below

    stride = torch._prims_common.make_contiguous_strides_for(x.shape)
    return torch.ops.prims.inductor_force_stride_order(x, stride)


@functools.cache
def native_winograd_available() -> bool:
    """Whether the C++ operator `ldmkit::winograd_conv3x3` is loaded (built on first use) and
    traceable by `torch.compile` (its shape function registered). Decided once per process,
    eagerly: `WinogradConv2d` asks when it is built, so a compiled graph only reads the answer."""
    return native_available() and _register_shape()


def _register_shape() -> bool:
    """Registers the operator's output shape and strides (channels-last) for tracing."""

    @torch.library.register_fake("ldmkit::winograd_conv3x3")
    def _shape(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        batch, _, height, width = x.shape
        size = (batch, kernel.shape[2], height, width)
        return x.new_empty(size).contiguous(memory_format=torch.channels_last)

    return True


def winograd_conv3x3(
    x: torch.Tensor,
    kernel: torch.Tensor,
    bias: torch.Tensor | None = None,
    native: bool | None = None,
) -> torch.Tensor:
    """`F.conv2d(x, weight, bias, padding=1)` for a 3x3 weight, with `kernel` its
    `winograd_kernel`. x (B, C_in, H, W) of any size; best in channels-last memory. In fp32 on
    the CPU it is the C++ operator (`csrc/winograd.cpp`, one call; the output is channels-last)
    where a compiler can build it, and otherwise `winograd_conv3x3_torch`.

    `native` is that answer decided beforehand (`native_winograd_available()`); pass it from
    code that `torch.compile` traces. `None` asks `native_winograd_available()` here, which is
    for eager callers only: dynamo does not trace through a `functools.cache` and would break
    the graph at every call (it did, at every convolution of the compiled UNet, and lost its
    whole Winograd speed-up; `tests/pipeline/test_compiled_graph.py` guards it)."""
    if native is None:
        native = native_winograd_available()
    if native and x.device.type == "cpu" and x.dtype == torch.float32:
        return torch.ops.ldmkit.winograd_conv3x3(x, kernel, bias)
    return winograd_conv3x3_torch(x, kernel, bias)


def winograd_conv3x3_torch(
    x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """`winograd_conv3x3` in torch operators, for any device and dtype: slow eager, fused into a
    few kernels by `torch.compile` (see `_materialised`)."""
    batch, _, height, width = x.shape
    rows, cols = (height + 3) // 4, (width + 3) // 4
    # Pad to whole tiles, channels last: each 6x6 tile starts every 4 pixels.
    padded = F.pad(x, (1, 4 * cols + 1 - width, 1, 4 * rows + 1 - height)).permute(0, 2, 3, 1)
    if torch.compiler.is_compiling():
        padded = _materialised(padded)
    along_h = _input_transform([padded[:, i : i + 4 * rows : 4] for i in range(6)])
    tiles = []
    for row in along_h:
        tiles += _input_transform([row[:, :, j : j + 4 * cols : 4] for j in range(6)])
    v = torch.stack(tiles).reshape(36, batch * rows * cols, -1)  # (36, tiles, C_in)
    m = torch.bmm(v, kernel).reshape(6, 6, batch, rows, cols, -1)  # (6, 6, B, th, tw, C_out)
    along_h_out = _output_transform(list(m.unbind(0)))  # 4 x (6, B, th, tw, C_out)
    out_rows = [torch.stack(_output_transform(list(r.unbind(0))), dim=3) for r in along_h_out]
    y = torch.stack(out_rows, dim=2)  # (B, th, 4, tw, 4, C_out)
    y = y.reshape(batch, 4 * rows, 4 * cols, -1)[:, :height, :width]
    if bias is not None:
        y = y + bias
    if torch.compiler.is_compiling():
        y = _materialised(y)
    return y.permute(0, 3, 1, 2)


def winograd_eligible(conv: nn.Conv2d) -> bool:
    """A plain 3x3 convolution with stride 1, padding 1, no dilation, groups or padding mode."""
    return (
        type(conv) is nn.Conv2d
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.padding == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
    )


class WinogradConv2d(nn.Module):
    """An `nn.Conv2d` (3x3, stride 1, padding 1) computed by `winograd_conv3x3` in fp32.

    It shares the convolution's weight and bias and transforms the weight on every call, so it
    is meant for a compiled graph with frozen weights, where that transform is folded into a
    constant. Under autocast, for inputs that are not fp32, and for inputs of fewer than
    `min_tiles` 4x4 output tiles in all (batch x tiles per map: the rows of each of the 36
    products; fewer leave them too small to beat direct convolution), it is the plain
    convolution. `min_tiles=None` picks 16 where the C++ operator runs (CPU) and 64 for the
    torch-ops path (its transforms cost more; both measured on the `small` UNet,
    docs/results/latent_diffusion.md).
    """

    def __init__(self, conv: nn.Conv2d, min_tiles: int | None = None):
        super().__init__()
        if not winograd_eligible(conv):
            raise ValueError(
                f"Winograd F(4x4, 3x3) needs a 3x3 convolution with stride 1, padding 1 and no "
                f"dilation or groups; got {conv}"
            )
        self.weight = conv.weight
        self.bias = conv.bias
        self.min_tiles = min_tiles
        # Decided (and the operator built) now, never inside a trace: forward reads a plain
        # bool, which dynamo folds into the graph as a constant.
        self.native = native_winograd_available()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        tiles = batch * ((height + 3) // 4) * ((width + 3) // 4)
        native = self.native and x.device.type == "cpu"
        min_tiles = self.min_tiles if self.min_tiles is not None else 16 if native else 64
        if (
            x.dtype != torch.float32
            or torch.is_autocast_enabled(x.device.type)
            or tiles < min_tiles
        ):
            return F.conv2d(x, self.weight, self.bias, padding=1)
        return winograd_conv3x3(x, winograd_kernel(self.weight), self.bias, native=native)


def use_winograd(module: nn.Module, min_channels: int = 32, min_tiles: int | None = None) -> int:
    """Replace, in place, every eligible 3x3 convolution in `module` with at least `min_channels`
    input and output channels by a `WinogradConv2d` (narrower ones gain little from a 4x cheaper
    product and still pay the transforms). `min_tiles` goes to each `WinogradConv2d`. Returns
    how many were replaced."""
    replaced = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if (
                isinstance(child, nn.Conv2d)
                and winograd_eligible(child)
                and min(child.in_channels, child.out_channels) >= min_channels
            ):
                setattr(parent, name, WinogradConv2d(child, min_tiles))
                replaced += 1
    return replaced
