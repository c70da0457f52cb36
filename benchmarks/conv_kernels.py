"""What a 3x3 convolution of the `small` UNet costs on this machine, by kernel and layout.

    python benchmarks/conv_kernels.py

The convolutions are about half of a compiled UNet step on the CPU, and both ldmkit and diffusers
call oneDNN for them, so their throughput bounds how much faster one network can run than the
other. Each row times one convolution shape from the `small` UNet (median of 30 calls):

- `nchw`: eager `F.conv2d` on contiguous tensors (what eager diffusers runs);
- `channels-last`: the same on channels-last tensors (no layout reorders around oneDNN);
- `prepacked`: oneDNN with the weight reordered once, as inductor freezing does;
- `bf16 cl`: bfloat16 tensors, channels-last;
- `winograd`: `ldmkit.nn.winograd.winograd_conv3x3_torch`, F(4x4, 3x3) Winograd (Lavin & Gray
  2016) in torch ops (36 batched GEMMs on 6x6 tiles, 4x fewer multiplications), eager: each
  tile transform is a chain of separate operators;
- `winograd compiled`: the same through `torch.compile` (one graph per shape), which fuses each
  transform into one kernel; the kernel transform is done once, outside the timing;
- `winograd C++`: the C++ operator `ldmkit::winograd_conv3x3` (`ldmkit.nn.winograd_conv3x3` on
  the CPU in fp32; built on first use, `-` where no compiler builds it).

Prints milliseconds and GFLOP/s (2 * MACs / time, the direct convolution's MACs) per kernel, and
the largest Winograd error against oneDNN of the compiled and C++ versions (relative to the
output's largest value).
"""

import json
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from ldmkit.hardware import machine_report
from ldmkit.nn.winograd import (
    native_winograd_available,
    winograd_conv3x3,
    winograd_conv3x3_torch,
    winograd_kernel,
)

# (batch, in channels, out channels, side): the 3x3 convolutions of the `small` UNet.
SHAPES = [(1, 64, 64, 32), (4, 64, 64, 32), (4, 128, 128, 32), (4, 192, 64, 32), (4, 128, 128, 16)]


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
    compiled_winograd = torch.compile(winograd_conv3x3_torch, dynamic=False)
    native = native_winograd_available()
    print(
        "| shape | nchw | channels-last | prepacked | bf16 cl | winograd | winograd compiled "
        "| winograd C++ | winograd error |"
    )
    print("| --- " * 9 + "|")
    for b, c_in, c_out, side in SHAPES:
        x = torch.randn(b, c_in, side, side)
        weight = torch.randn(c_out, c_in, 3, 3) / (9 * c_in) ** 0.5
        bias = torch.randn(c_out)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        w_cl = weight.contiguous(memory_format=torch.channels_last)
        packed = torch.ops.mkldnn._reorder_convolution_weight(
            weight, [1, 1], [1, 1], [1, 1], 1, list(x.shape)
        )
        u = winograd_kernel(weight)
        x_bf, w_bf, b_bf = x_cl.bfloat16(), w_cl.bfloat16(), bias.bfloat16()
        pointwise = torch.ops.mkldnn._convolution_pointwise
        same = ([1, 1], [1, 1], [1, 1], 1, "none", [], "")  # padding, stride, dilation, groups
        calls = {
            "nchw": partial(F.conv2d, x, weight, bias, padding=1),
            "channels-last": partial(F.conv2d, x_cl, w_cl, bias, padding=1),
            "prepacked": partial(pointwise, x_cl, packed, bias, *same),
            "bf16 cl": partial(F.conv2d, x_bf, w_bf, b_bf, padding=1),
            "winograd": partial(winograd_conv3x3_torch, x_cl, u, bias),
            "winograd compiled": partial(compiled_winograd, x_cl, u, bias),
        }
        if native:
            calls["winograd C++"] = partial(winograd_conv3x3, x_cl, u, bias)
        flops = 2 * b * c_in * c_out * 9 * side * side
        cells = []
        with torch.no_grad():
            for call in calls.values():
                seconds = median_seconds(call)
                cells.append(f"{seconds * 1e3:.2f} ({flops / seconds / 1e9:.0f})")
            if not native:
                cells.append("-")
            reference = F.conv2d(x, weight, bias, padding=1)
            outputs = [compiled_winograd(x_cl, u, bias)]
            if native:
                outputs.append(winograd_conv3x3(x_cl, u, bias))
            error = max((out - reference).abs().max() for out in outputs) / reference.abs().max()
        shape = f"{b}x{c_in}->{c_out} @ {side}x{side}"
        print(f"| {shape} | {' | '.join(cells)} | {float(error):.1e} |", flush=True)


if __name__ == "__main__":
    main()
