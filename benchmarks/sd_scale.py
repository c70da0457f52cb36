"""One Stable Diffusion 1.5-shaped UNet step (860M parameters, random weights) on this machine:
ldmkit against diffusers and OpenVINO at the same weights, round robin in one process.

    python benchmarks/sd_scale.py --group fp32   # ldmkit eager / compiled, diffusers, OpenVINO f32
    python benchmarks/sd_scale.py --group bf16   # the same in bf16
    python benchmarks/sd_scale.py --group fp32 --paths "ldmkit compiled" "openvino"

`ldmkit compiled` is `ldmkit sample --compile`'s path (`CompiledDenoiser`: its graph goes to
inductor's disk cache, so its first call is shorter in a later process); `ldmkit compiled
prepacked` the same with oneDNN-prepacked weights (`cache=False`), compiled in every process.

A step is one denoiser call with classifier-free guidance: batch 2, 4x64x64 latents (a 512x512
image), 77x768 context. The diffusers UNet2DConditionModel is built with SD 1.5's config and
random weights; ldmkit's UNet gets the same weights (`unet_from_diffusers`; the parity test
proves they compute the same function), and OpenVINO converts the diffusers module
(`openvino.convert_model`, then `compile_model` with INFERENCE_PRECISION_HINT f32 or bf16).
Each path's first call is timed apart (it holds a compile, where there is one), then the paths
are timed in alternation, `--rounds` times, and the median reported with TFLOP/s (FLOPs counted
once on diffusers' plain-matmul attention). The groups run apart: all fp32 and bf16 copies of an
860M UNet at once would not fit in 24 GiB. Each path's output is compared with diffusers' fp32
output (max abs difference), so a fast path that computes something else shows.

Needs the test extra (diffusers) and, for the OpenVINO paths, `pip install openvino`.
"""

import argparse
import copy
import gc
import json
import resource
import statistics
import time
from collections.abc import Callable

import torch
from unet_vs_diffusers import count_flops

from ldmkit.hardware import machine_report
from ldmkit.interop.diffusers_unet import unet_from_diffusers
from ldmkit.pipeline.compiled_denoiser import CompiledDenoiser

SD15 = dict(  # diffusers' UNet2DConditionModel defaults are SD 1.x's but for the context width
    sample_size=64, in_channels=4, out_channels=4, cross_attention_dim=768
)
PATHS = (
    "ldmkit eager",
    "ldmkit compiled",
    "ldmkit compiled prepacked",
    "diffusers eager",
    "diffusers compiled",
    "openvino",
)
DEFAULT_PATHS = ("ldmkit eager", "ldmkit compiled", "diffusers eager", "openvino")


def inputs(batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, t, context) of one guided step."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 4, 64, 64, generator=g)
    context = torch.randn(batch, 77, 768, generator=g)
    return x, torch.full((batch,), 500), context


class DiffusersStep(torch.nn.Module):
    """diffusers' UNet returning a tensor (for OpenVINO's tracer and torch.compile)."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, context, return_dict=False)[0]


def _autocast(call: Callable, dtype: torch.dtype | None) -> Callable:
    """`call` under no_grad, and bf16 autocast when `dtype` is given; a float32 result."""

    def run(*args: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=dtype is not None):
            return call(*args).float()

    return run


def build_paths(
    names: list[str], group: str, reference: torch.nn.Module, args: tuple
) -> dict[str, tuple[Callable, float]]:
    """{name: (call, seconds to make it ready before its first call)}."""
    bf16 = group == "bf16"
    dtype = torch.bfloat16 if bf16 else None
    out: dict[str, tuple[Callable, float]] = {}
    ours: torch.nn.Module | None = None
    if any(name.startswith("ldmkit") for name in names):
        ours = unet_from_diffusers(reference.state_dict(), dict(reference.config)).eval()
        if bf16:
            ours = ours.to(torch.bfloat16)  # as `--precision bf16` holds the weights
    if "ldmkit eager" in names:
        out["ldmkit eager"] = (_autocast(ours, dtype), 0.0)
    if "ldmkit compiled" in names:  # as `--compile` runs it: cacheable, weights not prepacked
        out["ldmkit compiled"] = (_autocast(CompiledDenoiser(ours), dtype), 0.0)
    if "ldmkit compiled prepacked" in names:  # oneDNN-prepacked weights, compiled every start
        prepacked = CompiledDenoiser(ours, cache=False)
        out["ldmkit compiled prepacked"] = (_autocast(prepacked, dtype), 0.0)
    step = DiffusersStep(reference)
    if bf16:
        step = copy.deepcopy(step).to(torch.bfloat16)  # bf16 weights, as ldmkit's
    if "diffusers eager" in names:
        out["diffusers eager"] = (_autocast(step, dtype), 0.0)
    if "diffusers compiled" in names:
        out["diffusers compiled"] = (_autocast(torch.compile(step), dtype), 0.0)
    if "openvino" in names:
        out["openvino"] = openvino_path(DiffusersStep(reference), args, bf16)
    return out


def openvino_path(module: torch.nn.Module, args: tuple, bf16: bool) -> tuple[Callable, float]:
    """The module converted by OpenVINO and compiled for the CPU at f32 or bf16."""
    import openvino as ov

    began = time.perf_counter()
    with torch.no_grad():
        model = ov.convert_model(module, example_input=args)
    converted = time.perf_counter() - began
    config = {
        "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
        "PERFORMANCE_HINT": "LATENCY",
    }
    compiled = ov.Core().compile_model(model, "CPU", config)
    ready = time.perf_counter() - began
    print(json.dumps({"openvino": {"convert_s": round(converted, 1), "ready_s": round(ready, 1)}}))
    request = compiled.create_infer_request()

    def run(*inputs: torch.Tensor) -> torch.Tensor:
        result = request.infer([tensor.numpy() for tensor in inputs])
        return torch.from_numpy(result[compiled.output(0)].copy())

    return run, ready


def rss_gib() -> float:
    """This process's peak resident memory so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--group", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(DEFAULT_PATHS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2, help="2: one guided step")
    args = parser.parse_args()

    import diffusers

    print("machine:", json.dumps(machine_report()))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, group {args.group}")
    torch.manual_seed(0)
    reference = diffusers.UNet2DConditionModel(**SD15).eval()
    step_args = inputs(args.batch)
    flops = count_flops(reference, step_args)
    with torch.no_grad():
        expected = DiffusersStep(reference)(*step_args)
    print(f"SD 1.5 UNet step, batch {args.batch}: {flops / 1e12:.2f} TFLOP")
    paths = build_paths(args.paths, args.group, reference, step_args)
    gc.collect()
    report: dict[str, dict] = {}
    for name, (call, ready) in paths.items():
        began = time.perf_counter()
        out = call(*step_args)
        first = time.perf_counter() - began
        difference = float((out - expected).abs().max())
        report[name] = {"ready_s": round(ready, 1), "first_call_s": round(first, 1)}
        report[name]["max_abs_diff_vs_diffusers_fp32"] = float(f"{difference:.2e}")
        print(json.dumps({name: report[name], "peak_rss_gib": round(rss_gib(), 2)}), flush=True)
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, (call, _ready) in paths.items():
            began = time.perf_counter()
            call(*step_args)
            times[name].append(time.perf_counter() - began)
    baseline = statistics.median(times[next(iter(times))])
    print(f"\n| path ({args.group}) | s/step | TFLOP/s | vs {next(iter(times))} | first call s |")
    print("| --- | --- | --- | --- | --- |")
    for name, values in times.items():
        median = statistics.median(values)
        report[name] |= {"s_per_step": round(median, 3), "rounds": [round(v, 3) for v in values]}
        print(
            f"| {name} | {median:.2f} | {flops / median / 1e12:.3f} | {baseline / median:.2f}x | "
            f"{report[name]['ready_s'] + report[name]['first_call_s']:.0f} |"
        )
    print(json.dumps({"group": args.group, "paths": report, "peak_rss_gib": round(rss_gib(), 2)}))


if __name__ == "__main__":
    main()
