"""Sample beyond the training size (Rombach et al. 2022, 4.3.2): the convolutional UNet on a
latent 1x, 2x and 4x the training side, whole or in blended tiles, with time and peak memory.

    python benchmarks/beyond_training_size.py --checkpoint runs/ldm-shapes-30/model

Each setting runs in a fresh process (peak resident memory is per process); nothing else heavy
should run beside it. Writes docs/results/beyond_training_size.{md,json} and the 4x samples.
"""

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch


def one(args: argparse.Namespace) -> None:
    """Child process: one sample at `--scale` x the training side; prints a JSON line."""
    from ldmkit.checkpoint import load_latent_diffusion
    from ldmkit.images import to_uint8
    from ldmkit.samplers import SamplingOptions

    torch.set_num_threads(args.threads)
    model = load_latent_diffusion(args.checkpoint)
    side = model.config.latent_size * args.scale
    labels = torch.tensor([args.label]) if model.num_classes else None
    prompts = [args.prompt] if model.takes_prompts else None
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    options = SamplingOptions(
        steps=args.steps, guidance=args.guidance, seed=args.seed, tile=args.tile or None
    )
    image = model.sample(1, labels, prompts=prompts, latent_size=side, options=options)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.image:
        from PIL import Image

        Image.fromarray(to_uint8(image)[0]).save(args.image)
    print(json.dumps({
        "scale": args.scale, "latent": side, "pixels": image.shape[-1], "tile": args.tile or None,
        "seconds": round(seconds, 2), "peak_rss_mib": round(peak / 1024),
        "sampling_rss_growth_mib": round((peak - before) / 1024),
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, default=Path("runs/ldm-shapes-30/model"))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--label", type=int, default=4)
    parser.add_argument("--prompt", default="a large red circle above a small blue square")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scale", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--tile", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--image", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("docs/results/beyond_training_size"))
    args = parser.parse_args()
    if args.scale:
        return one(args)

    settings = [(1, 0), (2, 0), (4, 0), (4, 16)]  # (scale, tile side; 0 = whole)
    rows = []
    images = args.out.parent.parent / "images"
    images.mkdir(parents=True, exist_ok=True)
    for scale, tile in settings:
        name = f"beyond_size_{scale}x{'_tiled' if tile else ''}.png"
        command = [
            sys.executable, __file__, "--checkpoint", str(args.checkpoint), "--scale", str(scale),
            "--tile", str(tile), "--steps", str(args.steps), "--guidance", str(args.guidance),
            "--label", str(args.label), "--prompt", args.prompt, "--seed", str(args.seed),
            "--threads", str(args.threads), "--image", str(images / name),
        ]  # fmt: skip
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        rows.append({**json.loads(done.stdout.strip().splitlines()[-1]), "image": name})
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "checkpoint": str(args.checkpoint),
        "sampler": f"DDIM {args.steps}",
        "guidance": args.guidance,
        "machine": f"{platform.machine()}, {args.threads} threads, torch {torch.__version__}",
        "rows": rows,
    }
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    lines = [
        "# Sampling beyond the training size",
        "",
        f"`python benchmarks/beyond_training_size.py --checkpoint {args.checkpoint}` "
        f"({result['sampler']}, guidance {args.guidance}, one sample, {result['machine']}).",
        "",
        "| scale | latent | image | tiles | seconds | peak RSS (MiB) | sampling growth (MiB) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        tiles = f"{r['tile']}x{r['tile']}" if r["tile"] else "whole"
        lines.append(
            f"| {r['scale']}x | {r['latent']}^2 | {r['pixels']} px | {tiles} | {r['seconds']} | "
            f"{r['peak_rss_mib']} | {r['sampling_rss_growth_mib']} |"
        )
    lines += [""] + [f"![{r['image']}](../images/{r['image']})" for r in rows] + [""]
    args.out.with_suffix(".md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
