"""`LatentDiffusion.sample` in each speed mode against eager fp32: seconds and agreement.

    python benchmarks/sample_speed.py                       # the shipped text-to-image model
    python benchmarks/sample_speed.py --checkpoint RUN/model --n 64 --latent-size 32
    python benchmarks/sample_speed.py --device cuda --n 64  # on a GPU

Modes: eager fp32 (the reference), `compile=True`, `precision="bf16"` (autocast over float32
weights, or with the weights held in bf16: `hold_weights_in`), and both. Each compiled
mode is called once first (its one-off compile); then every mode samples the same seeds in turn
for `--rounds` rounds (this machine is noisy, so all see the same noise) and the medians give
the steady cost. Prints one JSON line per mode: median seconds per call and per image, speed-up
over eager fp32, the compile overhead and the number of images after which it pays back, and
the largest pixel difference from the eager fp32 images.
"""

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from ldmkit.assets import SHAPES_TEXT_TO_IMAGE
from ldmkit.checkpoint import load_latent_diffusion
from ldmkit.hardware import machine_report
from ldmkit.samplers import SamplingOptions

MODES = {
    "eager fp32": {"compile": False, "precision": "fp32"},
    "compiled fp32": {"compile": True, "precision": "fp32"},
    "eager bf16": {"compile": False, "precision": "bf16"},
    "compiled bf16": {"compile": True, "precision": "bf16"},
    # The same with the UNet's weights held in bf16 (what `ldmkit sample --precision bf16` does).
    "eager bf16 weights": {"compile": False, "precision": "bf16", "hold": True},
    "compiled bf16 weights": {"compile": True, "precision": "bf16", "hold": True},
}


def timed(call: Callable[[], torch.Tensor]) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = call()
    if out.is_cuda:
        torch.cuda.synchronize(out.device)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: shapes_t2i")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--prompt", default="a large red circle")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latent-size", type=int, default=None, help="default: the training side")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    path = args.checkpoint or SHAPES_TEXT_TO_IMAGE
    device = torch.device(args.device)
    model = load_latent_diffusion(path, device)
    condition: dict = {}
    if model.takes_prompts:
        condition["prompts"] = [args.prompt] * args.n
    if model.num_classes:
        condition["labels"] = torch.arange(args.n, device=device) % model.num_classes

    held = copy.deepcopy(model)  # the UNet's weights in bf16, for the "weights" modes
    held.hold_weights_in("bf16")

    def run(mode: str) -> torch.Tensor:
        settings = dict(MODES[mode])
        which = held if settings.pop("hold", False) else model
        options = SamplingOptions(steps=args.steps, guidance=args.guidance, **settings)
        return which.sample(args.n, latent_size=args.latent_size, options=options, **condition)

    print("machine:", json.dumps(machine_report()))
    modes = ["eager fp32", *(m for m in args.modes if m != "eager fp32")]
    first = {mode: timed(partial(run, mode))[0] for mode in modes if MODES[mode]["compile"]}
    seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    images: dict[str, torch.Tensor] = {}
    for _ in range(args.rounds):
        for mode in modes:
            spent, images[mode] = timed(partial(run, mode))
            seconds[mode].append(spent)
    reference = statistics.median(seconds["eager fp32"])
    for mode in modes:
        median = statistics.median(seconds[mode])
        row = {
            "mode": mode,
            "checkpoint": str(path),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "n": args.n,
            "steps": args.steps,
            "latent_size": args.latent_size or model.config.latent_size,
            "threads": torch.get_num_threads(),
            "seconds": [round(s, 2) for s in seconds[mode]],
            "s_per_image": round(median / args.n, 3),
            "speed_up": round(reference / median, 2),
            "max_pixel_difference": float((images[mode] - images["eager fp32"]).abs().max()),
        }
        if mode in first:
            overhead = first[mode] - median
            saved_per_image = (reference - median) / args.n
            row["compile_overhead_s"] = round(overhead, 1)
            row["pays_back_after_images"] = (
                round(overhead / saved_per_image) if saved_per_image > 0 else None
            )
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
