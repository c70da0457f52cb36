"""What a 3x3 convolution of the `small` UNet costs on this machine, by kernel and layout.

    python benchmarks/conv_kernels.py

The convolutions are about half of a compiled UNet step on the CPU, and both ldmkit and diffusers
call oneDNN for them, so their throughput bounds how much faster one network can run than the
other. Each row times one convolution shape from the `small` UNet (median of 30 calls):

- `nchw`: eager `F.conv2d` on contiguous tensors (what eager diffusers runs);
- `channels-last`: the same on channels-last tensors (no layout reorders around oneDNN);
- `prepacked`: oneDNN with the weight reordered once, as inductor freezing does;
- `bf16 cl`: bfloat16 tensors, channels-last;
- `winograd`: F(4x4, 3x3) Winograd (Lavin & Gray 2016) written in torch ops (36 batched GEMMs
  on 6x6 tiles): 4x fewer multiplications, but the tile transforms are memory-bound here.

Prints milliseconds and GFLOP/s (2 * MACs / time) per kernel, and the Winograd error against
oneDNN (relative to the output's largest value).
"""

import json
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from ldmkit.hardware import machine_report

# (batch, in channels, out channels, side): the 3x3 convolutions of the `small` UNet.
SHAPES = [(1, 64, 64, 32), (4, 64, 64, 32), (4, 128, 128, 32), (4, 192, 64, 32), (4, 128, 128, 16)]

# F(4x4, 3x3): input transform B^T, weight transform G, output transform A^T (Lavin & Gray 2016).
B_T = torch.tensor(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    dtype=torch.float32,
)
G = torch.tensor(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ]
)
A_T = torch.tensor(
    [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    dtype=torch.float32,
)


def winograd_weight(weight: torch.Tensor) -> torch.Tensor:
    """(C_out, C_in, 3, 3) -> (36, C_in, C_out): G w G^T per filter, once."""
    u = torch.einsum("ij,ocjk,lk->ilco", G, weight, G)  # (6, 6, C_in, C_out)
    return u.reshape(36, weight.shape[1], weight.shape[0]).contiguous()


def winograd_conv(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """3x3 convolution, padding 1, of x (B, C, H, W) with H, W divisible by 4."""
    b, c, h, w = x.shape
    padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1))  # (B, H+2, W+2, C)
    tiles = padded.unfold(1, 6, 4).unfold(2, 6, 4)  # (B, H/4, W/4, C, 6, 6)
    v = torch.einsum("ij,btscjk,lk->ilbtsc", B_T, tiles, B_T).reshape(36, -1, c)
    m = torch.bmm(v, u).view(6, 6, b, h // 4, w // 4, -1)  # (6, 6, B, H/4, W/4, C_out)
    y = torch.einsum("ij,jkbtso,lk->btisl o".replace(" ", ""), A_T, m, A_T)
    return (y.reshape(b, h, w, -1) + bias).permute(0, 3, 1, 2)


def median_seconds(call: Callable[[], object], n: int = 30) -> float:
    for _ in range(3):
        call()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    torch.manual_seed(0)
    print("machine:", json.dumps(machine_report()))
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}; ms (GFLOP/s)")
    print("| shape | nchw | channels-last | prepacked | bf16 cl | winograd | winograd error |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for b, c_in, c_out, side in SHAPES:
        x = torch.randn(b, c_in, side, side)
        weight = torch.randn(c_out, c_in, 3, 3) / (9 * c_in) ** 0.5
        bias = torch.randn(c_out)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        w_cl = weight.contiguous(memory_format=torch.channels_last)
        packed = torch.ops.mkldnn._reorder_convolution_weight(
            weight, [1, 1], [1, 1], [1, 1], 1, list(x.shape)
        )
        u = winograd_weight(weight)
        x_bf, w_bf, b_bf = x_cl.bfloat16(), w_cl.bfloat16(), bias.bfloat16()
        pointwise = torch.ops.mkldnn._convolution_pointwise
        same = ([1, 1], [1, 1], [1, 1], 1, "none", [], "")  # padding, stride, dilation, groups
        calls = {
            "nchw": partial(F.conv2d, x, weight, bias, padding=1),
            "channels-last": partial(F.conv2d, x_cl, w_cl, bias, padding=1),
            "prepacked": partial(pointwise, x_cl, packed, bias, *same),
            "bf16 cl": partial(F.conv2d, x_bf, w_bf, b_bf, padding=1),
            "winograd": partial(winograd_conv, x_cl, u, bias),
        }
        flops = 2 * b * c_in * c_out * 9 * side * side
        cells = []
        with torch.no_grad():
            for call in calls.values():
                seconds = median_seconds(call)
                cells.append(f"{seconds * 1e3:.2f} ({flops / seconds / 1e9:.0f})")
            reference = F.conv2d(x, weight, bias, padding=1)
            error = (winograd_conv(x_cl, u, bias) - reference).abs().max() / reference.abs().max()
        shape = f"{b}x{c_in}->{c_out} @ {side}x{side}"
        print(f"| {shape} | {' | '.join(cells)} | {float(error):.1e} |", flush=True)


if __name__ == "__main__":
    main()
