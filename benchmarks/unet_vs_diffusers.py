"""ldmkit's UNet against diffusers' `UNet2DConditionModel` at the same weights, dtype and threads.

    python benchmarks/unet_vs_diffusers.py                 # CPU: fp32 and bf16, 32/64 latents
    python benchmarks/unet_vs_diffusers.py --device cuda   # the same on a GPU

Both networks run one denoiser forward (no grad) with text-style cross-attention context. The
diffusers model is built with random weights, mapped onto ldmkit's UNet (the parity test proves
the two compute the same function), and the two are timed in alternation (round-robin, one
process) so machine noise hits both alike. FLOPs are counted once per case with
`torch.utils.flop_counter` on the diffusers model with its plain matmul attention processor
(the counter does not see CPU scaled-dot-product attention); GFLOP/s = FLOPs / median time.
Needs the test extra (`pip install diffusers`).
"""

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Callable, Iterator
from functools import partial

import torch
from torch.utils.flop_counter import FlopCounterMode

from ldmkit.hardware import machine_report
from ldmkit.interop.diffusers_unet import unet_from_diffusers
from ldmkit.nn import native_winograd_available
from ldmkit.pipeline.compiled_denoiser import CompiledDenoiser

# ldmkit's `small` preset with cross-attention (context 128, 32-wide heads at factors 2 and 4),
# written as a diffusers config; `attention_head_dim` there is the number of heads per level.
CONFIGS: dict[str, dict] = {
    "small": dict(
        block_out_channels=(64, 128, 128),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4, 4),
        cross_attention_dim=128,
        norm_num_groups=32,
    ),
    # A wider LDM-style network (128 channels, 64-wide heads at factors 2 and 4).
    "medium": dict(
        block_out_channels=(128, 256, 256),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4, 4),
        cross_attention_dim=512,
        norm_num_groups=32,
    ),
}


def build(name: str, device: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(diffusers model, ldmkit model) with identical random weights, in eval mode."""
    import diffusers

    torch.manual_seed(0)
    reference = diffusers.UNet2DConditionModel(
        in_channels=4, out_channels=4, sample_size=32, **CONFIGS[name]
    )
    with torch.no_grad():
        for p in reference.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
    ours = unet_from_diffusers(reference.state_dict(), dict(reference.config))
    return reference.to(device).eval(), ours.to(device).eval()


def count_flops(reference: torch.nn.Module, inputs: tuple) -> int:
    """FLOPs of one forward, attention included (plain matmul processor while counting)."""
    from diffusers.models.attention_processor import AttnProcessor

    saved = reference.attn_processors
    reference.set_attn_processor(AttnProcessor())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        reference(*inputs)
    reference.set_attn_processor(saved)
    return counter.get_total_flops()


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def round_robin(
    calls: dict[str, Callable[[], object]], rounds: int, device: str
) -> dict[str, float]:
    """Median seconds of each call, the calls alternated every round."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():  # warm-up (allocator, oneDNN primitives, cuDNN autotune)
        call()
        call()
    for _ in range(rounds):
        for name, call in calls.items():
            _sync(device)
            start = time.perf_counter()
            call()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


@contextlib.contextmanager
def precision(dtype: str, device: str) -> Iterator[None]:
    if dtype == "fp32":
        yield
    else:
        with torch.autocast(device, dtype=getattr(torch, {"bf16": "bfloat16"}[dtype])):
            yield


def forward(
    model: Callable[..., object],
    inputs: tuple,
    dtype: str,
    device: str,
    memory_format: torch.memory_format,
) -> torch.Tensor:
    """One no-grad denoiser call; diffusers' output object is unwrapped."""
    x, *rest = inputs
    with torch.no_grad(), precision(dtype, device):
        out = model(x.contiguous(memory_format=memory_format), *rest)
    return getattr(out, "sample", out)


def operator_table(call: Callable[[], object], calls: int = 5) -> str:
    """torch.profiler's operators by self time over `calls` calls (a compiled graph's fused
    kernels show as its `CompiledFxGraph` self time)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(calls):
            call()
    return profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="small", choices=list(CONFIGS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=77, help="context length")
    parser.add_argument(
        "--channels-last", action="store_true", help="ldmkit eager in channels-last memory format"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="ldmkit as `ldmkit sample --compile` runs it: CompiledDenoiser (torch.compile with "
        "frozen weights, channels-last, a C++ wrapper and Winograd convolutions on the CPU, one "
        "graph per shape)",
    )
    parser.add_argument(
        "--direct",
        action="store_true",
        help="with --compile: also time a compiled copy with direct convolutions only "
        "(CompiledDenoiser(winograd=False), extra columns)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also print ldmkit's top operators per case"
    )
    args = parser.parse_args()
    if args.compile and args.channels_last:
        parser.error("--compile already runs channels-last; pass one of them")
    if args.direct and not args.compile:
        parser.error("--direct applies to the compiled network: add --compile")

    reference, ours = build(args.config, args.device)
    ours_format = torch.contiguous_format
    if args.channels_last:
        ours, ours_format = ours.to(memory_format=torch.channels_last), torch.channels_last
    denoiser: Callable[..., torch.Tensor] = ours
    if args.compile:
        denoiser = CompiledDenoiser(ours)
    direct = CompiledDenoiser(ours, winograd=False) if args.direct else None
    params = sum(p.numel() for p in ours.parameters()) / 1e6
    where = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print("machine:", json.dumps(machine_report()))
    print(
        f"config {args.config} ({params:.1f}M parameters), {where}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, {args.rounds} rounds, "
        f"ldmkit channels-last={args.channels_last} compile={args.compile} "
        f"winograd={args.compile and args.device == 'cpu' and native_winograd_available()}"
    )
    extra = " direct ms | direct speed-up |" if direct else ""
    print(
        f"| dtype | latent | batch | ldmkit ms | diffusers ms | speed-up | ldmkit GFLOP/s |{extra}"
    )
    print("| --- " * (9 if direct else 7) + "|")
    dim = reference.config.cross_attention_dim
    for dtype in args.dtypes:
        for size in args.sizes:
            for batch in args.batches:
                g = torch.Generator().manual_seed(size * 10 + batch)
                x = torch.randn(batch, 4, size, size, generator=g).to(args.device)
                t = torch.full((batch,), 500, device=args.device)
                context = torch.randn(batch, args.tokens, dim, generator=g).to(args.device)
                inputs = (x, t, context)
                flops = count_flops(reference, inputs)
                calls = {
                    "ours": partial(forward, denoiser, inputs, dtype, args.device, ours_format),
                    "diffusers": partial(
                        forward, reference, inputs, dtype, args.device, torch.contiguous_format
                    ),
                }
                if direct is not None:
                    calls["direct"] = partial(
                        forward, direct, inputs, dtype, args.device, ours_format
                    )
                seconds = round_robin(calls, args.rounds, args.device)
                cells = ""
                if direct is not None:
                    cells = (
                        f" {seconds['direct'] * 1e3:.1f} | "
                        f"{seconds['diffusers'] / seconds['direct']:.2f}x |"
                    )
                print(
                    f"| {dtype} | 4x{size}x{size} | {batch} | {seconds['ours'] * 1e3:.1f} | "
                    f"{seconds['diffusers'] * 1e3:.1f} | "
                    f"{seconds['diffusers'] / seconds['ours']:.2f}x | "
                    f"{flops / seconds['ours'] / 1e9:.0f} |{cells}",
                    flush=True,
                )
                if args.profile:
                    print(operator_table(calls["ours"]), flush=True)


if __name__ == "__main__":
    main()
