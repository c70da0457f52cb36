"""Stable Diffusion 1.5's largest attention (self-attention at the 64x64 latent: batch 2 with
guidance, 8 heads of 40 over 4096 tokens) on the CPU, by kernel: torch's SDPA (the flash kernel
the UNet calls), `flex_attention` compiled, and OpenVINO's attention on the same inputs.

    python benchmarks/attention_kernels.py --dtype bf16     # about 1 min
    python benchmarks/attention_kernels.py --dtype fp32

Round robin in one process (median of `--rounds`), with each kernel's largest difference from
float32 SDPA. OpenVINO takes float32 inputs and runs at its precision hint (bf16 or f32).
Prints the machine report and one line per kernel.
"""

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

SHAPE = (2, 8, 4096, 40)  # batch, heads, tokens, head width


def kernels(dtype: torch.dtype) -> dict[str, Callable[..., torch.Tensor]]:
    out: dict[str, Callable[..., torch.Tensor]] = {"sdpa": F.scaled_dot_product_attention}
    from torch.nn.attention.flex_attention import flex_attention

    out["flex_attention compiled"] = torch.compile(flex_attention, dynamic=False)
    try:
        out["openvino"] = openvino_kernel(dtype)
    except ImportError:
        print("openvino not installed: pip install openvino")
    return out


def openvino_kernel(dtype: torch.dtype) -> Callable[..., torch.Tensor]:
    import openvino as ov

    class Attention(torch.nn.Module):
        def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return F.scaled_dot_product_attention(q, k, v)

    example = tuple(torch.zeros(SHAPE) for _ in range(3))
    model = ov.convert_model(Attention(), example_input=example)
    hint = "bf16" if dtype == torch.bfloat16 else "f32"
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint})
    request = compiled.create_infer_request()

    def run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        arrays = [t.float().numpy() for t in (q, k, v)]
        return torch.from_numpy(request.infer(arrays)[0].copy())

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from ldmkit.hardware import machine_report

    print("machine:", json.dumps(machine_report()), flush=True)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(SHAPE, generator=generator) for _ in range(3))
    reference = F.scaled_dot_product_attention(q, k, v)
    inputs = tuple(t.to(dtype) for t in (q, k, v))
    run = kernels(dtype)
    errors = {name: (f(*inputs).float() - reference).abs().max().item() for name, f in run.items()}
    seconds: dict[str, list[float]] = {name: [] for name in run}
    for _ in range(args.rounds):
        for name, f in run.items():
            start = time.perf_counter()
            f(*inputs)
            seconds[name].append(time.perf_counter() - start)
    b, h, n, d = SHAPE
    flop = 4 * b * h * n * n * d
    for name in run:
        median = statistics.median(seconds[name])
        print(json.dumps({
            "kernel": name,
            "dtype": args.dtype,
            "ms": round(median * 1000, 1),
            "tflops": round(flop / median / 1e12, 3),
            "max_abs_diff_vs_fp32_sdpa": errors[name],
        }))  # fmt: skip


if __name__ == "__main__":
    main()
