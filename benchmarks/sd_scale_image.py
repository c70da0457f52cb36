"""Whole 512x512 images from one Stable Diffusion 1.5-layout file (random weights, 860M UNet,
kl-f8 VAE, CLIP ViT-L/14): text encoding + 20 guided steps + VAE decode, per path, each in a
fresh process: the time from the process's start to its first image (load and any compile
included), a second (warm) image, and the process's peak resident memory against the weights
it holds. The per-step comparison in one process is `sd_scale.py`.

    python benchmarks/sd_scale_image.py                         # every path, 20 steps
    python benchmarks/sd_scale_image.py --paths "ldmkit bf16" "sd.cpp f16" --steps 20

Paths: ldmkit (`ldmkit.load` + `sample`, DDIM) in fp32 or bf16 (the UNet's weights held in
bf16, as `--precision bf16`), eager or compiled; diffusers' StableDiffusionPipeline (DDIM) from
the same weights exported as a diffusers folder, fp32 or bf16 weights; stable-diffusion.cpp
through its Python binding (`pip install stable-diffusion-cpp-python`, Euler; it reads the file
itself), f32 or f16 weights. The file is `sd_single_file.py`'s (built on first use). Prints the
machine report, one JSON line per path and a table.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from sd_single_file import FILE, build

FOLDER = Path("/tmp/sd15-random-diffusers")
PROMPT = "a photo of a cat"
PATHS = (
    "ldmkit fp32",
    "ldmkit fp32 compiled",
    "ldmkit bf16",
    "ldmkit bf16 compiled",
    "diffusers fp32",
    "diffusers bf16",
    "sd.cpp f32",
    "sd.cpp f16",
)


def _gib(nbytes: float) -> float:
    return round(nbytes / 2**30, 2)


def _held(modules: list) -> int:
    """Bytes of the parameters and buffers `modules` hold."""
    tensors = [t for m in modules for t in (*m.parameters(), *m.buffers())]
    return sum(t.numel() * t.element_size() for t in tensors)


def ldmkit_images(path: str, steps: int, images: int) -> tuple[list[float], float]:
    """Seconds per image and the bytes of weights held, through `ldmkit.load` + `sample`."""
    import ldmkit
    from ldmkit.samplers import SamplingOptions

    precision = "bf16" if "bf16" in path else "fp32"
    model = ldmkit.load(FILE, precision=precision)  # as `ldmkit sample --precision` loads
    options = SamplingOptions(
        sampler="ddim", steps=steps, guidance=7.5, precision=precision, seed=0,
        compile="compiled" in path,
    )  # fmt: skip
    seconds = []
    for _ in range(images):
        began = time.perf_counter()
        model.sample(1, prompts=[PROMPT], options=options)
        seconds.append(time.perf_counter() - began)
    clip = model.conditioner("prompts").clip.model  # not a registered submodule
    return seconds, _held([model, clip])


def diffusers_images(path: str, steps: int, images: int) -> tuple[list[float], float]:
    """The same through diffusers' StableDiffusionPipeline from the exported folder."""
    import diffusers
    import torch

    dtype = torch.bfloat16 if "bf16" in path else torch.float32
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(
        FOLDER, torch_dtype=dtype, safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    seconds = []
    for _ in range(images):
        began = time.perf_counter()
        generator = torch.Generator().manual_seed(0)
        pipe(PROMPT, num_inference_steps=steps, guidance_scale=7.5, generator=generator)
        seconds.append(time.perf_counter() - began)
    return seconds, _held([pipe.unet, pipe.vae, pipe.text_encoder])


def sdcpp_images(path: str, steps: int, images: int) -> tuple[list[float], float]:
    """The same through stable-diffusion.cpp, which reads the single file itself."""
    from stable_diffusion_cpp import StableDiffusion

    wtype = "f16" if "f16" in path else "f32"
    sd = StableDiffusion(
        model_path=str(FILE), wtype=wtype, n_threads=os.cpu_count() or 1, verbose=False
    )
    seconds = []
    for _ in range(images):
        began = time.perf_counter()
        sd.generate_image(PROMPT, cfg_scale=7.5, sample_steps=steps, sample_method="euler", seed=0)
        seconds.append(time.perf_counter() - began)
    # Its weights as held: the file's float32 tensors, halved where f16 (norms stay f32).
    held = FILE.stat().st_size / (2 if wtype == "f16" else 1)
    return seconds, held


def child(path: str, steps: int, images: int, spawned: float) -> dict:
    """One path in this fresh process; `spawned` is the parent's clock at the spawn."""
    run = ldmkit_images if path.startswith("ldmkit") else (
        diffusers_images if path.startswith("diffusers") else sdcpp_images
    )  # fmt: skip
    seconds, held = run(path, steps, images)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    first_done = time.time() - sum(seconds[1:])  # the warm images came after the first
    return {
        "path": path,
        "steps": steps,
        "first_image_after_start_s": round(first_done - spawned, 1),
        "image_s": [round(s, 1) for s in seconds],
        "weights_held_gib": _gib(held),
        "peak_rss_gib": _gib(rss),
        "peak_over_weights": round(rss / held, 2),
    }


def ensure_inputs(paths: list[str]) -> None:
    """The random single file, and its diffusers export when a diffusers path runs."""
    if not FILE.is_file():
        build(FILE)
    if any(p.startswith("diffusers") for p in paths) and not FOLDER.is_dir():
        import ldmkit
        from ldmkit.interop.export_diffusers import export_diffusers

        export_diffusers(ldmkit.load(FILE), FOLDER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument(
        "--images",
        type=int,
        help="images per process (default: 2 for compiled paths, the first holding the "
        "compile, else 1)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        ensure_inputs(args.prepare)
        return
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.images or 1, args.spawned)))
        return
    from ldmkit.hardware import machine_report

    print("machine:", json.dumps(machine_report()), flush=True)
    # In a process of its own: a child's peak resident memory (ru_maxrss) starts from its
    # parent's at the fork, and building the inputs loads the whole model.
    prepare = [sys.executable, __file__, "--prepare", *args.paths]
    subprocess.run(prepare, check=True)
    rows = []
    for path in args.paths:
        command = [sys.executable, __file__, "--child", path, "--steps", str(args.steps)]
        images = args.images or (2 if "compiled" in path else 1)
        command += ["--images", str(images), "--spawned", repr(time.time())]
        done = subprocess.run(command, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith('{"path"')]
        if done.returncode or not lines:
            print(json.dumps({"path": path, "failed": done.stderr.strip()[-600:]}), flush=True)
            continue
        print(lines[-1], flush=True)
        rows.append(json.loads(lines[-1]))
    print("\n| path | first image after start s | warm image s | peak RSS GiB | weights GiB |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        warm = row["image_s"][-1]
        print(
            f"| {row['path']} | {row['first_image_after_start_s']:.0f} | {warm:.0f} | "
            f"{row['peak_rss_gib']:.2f} | {row['weights_held_gib']:.2f} |"
        )


if __name__ == "__main__":
    main()
