"""`LatentDiffusion.sample` eager against `compile=True` on a checkpoint: seconds and agreement.

    python benchmarks/sample_compiled.py                       # the shipped text-to-image model
    python benchmarks/sample_compiled.py --checkpoint RUN/model --n 64 --steps 50

The first compiled call includes the one-off compile; then eager and compiled calls alternate
for `--rounds` rounds (this machine is noisy, so both see the same noise) and the medians give
the steady cost. Prints one JSON line: median seconds per call and per sampled image, the compile
overhead, the number of images after which compiling pays back, and the largest pixel difference
between the eager and compiled images (same seeds).
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from ldmkit.assets import SHAPES_TEXT_TO_IMAGE
from ldmkit.checkpoint import load_latent_diffusion


def timed(call) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = call()
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
    args = parser.parse_args()
    path = args.checkpoint or SHAPES_TEXT_TO_IMAGE
    model = load_latent_diffusion(path, torch.device("cpu"))
    condition: dict = {}
    if model.takes_prompts:
        condition["prompts"] = [args.prompt] * args.n
    if model.config.num_classes:
        condition["labels"] = torch.arange(args.n) % model.config.num_classes

    def run(compile: bool) -> torch.Tensor:
        return model.sample(
            args.n,
            guidance=args.guidance,
            steps=args.steps,
            latent_size=args.latent_size,
            compile=compile,
            **condition,
        )

    first_s, first_images = timed(lambda: run(True))
    eager, compiled = [], []
    for _ in range(args.rounds):
        eager.append(timed(lambda: run(False)))
        compiled.append(timed(lambda: run(True)))
    eager_s = statistics.median(s for s, _ in eager)
    compiled_s = statistics.median(s for s, _ in compiled)
    overhead = first_s - compiled_s
    saved_per_image = (eager_s - compiled_s) / args.n
    print(
        json.dumps(
            {
                "checkpoint": str(path),
                "n": args.n,
                "steps": args.steps,
                "latent_size": args.latent_size or model.config.latent_size,
                "threads": torch.get_num_threads(),
                "first_compiled_s": round(first_s, 2),
                "eager_s": [round(s, 2) for s, _ in eager],
                "compiled_s": [round(s, 2) for s, _ in compiled],
                "eager_s_per_image": round(eager_s / args.n, 3),
                "compiled_s_per_image": round(compiled_s / args.n, 3),
                "speed_up": round(eager_s / compiled_s, 2),
                "compile_overhead_s": round(overhead, 1),
                "pays_back_after_images": (
                    round(overhead / saved_per_image) if saved_per_image > 0 else None
                ),
                "max_pixel_difference": float((eager[0][1] - first_images).abs().max()),
            }
        )
    )


if __name__ == "__main__":
    main()
