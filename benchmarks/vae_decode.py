"""One 512x512 decode by Stable Diffusion's kl-f8 decoder (random weights: time and memory do
not depend on them), fp32, on the CPU: ldmkit's inference path against the plain path it
replaced and against diffusers' AutoencoderKL holding the same weights.

    python benchmarks/vae_decode.py                 # round robin, 5 rounds, then memory
    python benchmarks/vae_decode.py --side 1024 --rounds 3

Paths:
- `ldmkit`: `Autoencoder.decode` without autograd, as sampling runs it (channels-last, the
  activations in place, each upsampling as four 2x2 convolutions of its input).
- `ldmkit bf16`: the same under bf16 autocast, as `sample(precision="bf16")` decodes (its
  quality: the shipped kl-f4's bf16 decode against its float32 one, printed first).
- `ldmkit plain`: the same module with autograd on and its weights frozen, which takes the
  training path (contiguous layout, upsample then convolve, out of place) and builds no graph:
  what sampling ran before.
- `diffusers`: `AutoencoderKL.decode` on the same weights (`export_diffusers`' mapping).

Times are round robin in one process (median of `--rounds`), with the largest difference of
each path's image from the plain path's. The memory part runs each path once in a fresh process
and reports the growth of its peak resident memory over the decode (weights already loaded).
Prints the machine report, JSON lines and a table.
"""

import argparse
import contextlib
import json
import math
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import torch

PATHS = ("ldmkit", "ldmkit bf16", "ldmkit plain", "diffusers")


def decoders(paths: list[str]) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """{path: latent -> image} on one set of random SD-layout weights."""
    from megapixel import sd_decoder

    torch.manual_seed(0)
    model = sd_decoder().requires_grad_(False)
    out: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    if "ldmkit" in paths:
        out["ldmkit"] = lambda z: _run(torch.no_grad, model.decode, z)
    if "ldmkit bf16" in paths:
        out["ldmkit bf16"] = lambda z: _run(_bf16, model.decode, z).float()
    if "ldmkit plain" in paths:
        out["ldmkit plain"] = lambda z: _run(torch.enable_grad, model.decode, z)
    if "diffusers" in paths:
        out["diffusers"] = diffusers_decoder(model)
    return out


def _bf16() -> contextlib.ExitStack:
    """No autograd, bf16 autocast: how `sample(precision="bf16")` decodes."""
    stack = contextlib.ExitStack()
    stack.enter_context(torch.no_grad())
    stack.enter_context(torch.autocast("cpu", torch.bfloat16))
    return stack


def bf16_quality(scenes: int = 8) -> dict:
    """The shipped (trained) kl-f4's decode of held-out shapes scenes under bf16 autocast
    against its float32 decode: PSNR over [-1, 1] images, and the largest difference."""
    from ldmkit.assets import SHAPES_AUTOENCODER
    from ldmkit.checkpoint import load_autoencoder
    from ldmkit.data.shapes import ShapesConfig, ShapesDataset

    model = load_autoencoder(SHAPES_AUTOENCODER).eval()
    data = ShapesDataset(ShapesConfig(resolution=256), size=scenes, seed=1)
    images = torch.stack([data[i]["image"] for i in range(scenes)])
    with torch.no_grad():
        z = model.to_latent(images)
        full = model.from_latent(z).clamp(-1, 1)
    with _bf16():
        half = model.from_latent(z).float().clamp(-1, 1)
    mse = torch.mean((full - half) ** 2).item()
    return {
        "bf16_decode_vs_fp32": "shipped kl-f4, 256x256 shapes scenes",
        "psnr_db": round(10 * math.log10(4 / mse), 1),
        "max_abs_diff": round((full - half).abs().max().item(), 4),
    }


def _run(mode: Callable, decode: Callable, z: torch.Tensor) -> torch.Tensor:
    with mode():
        return decode(z)


def diffusers_decoder(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """diffusers' AutoencoderKL with `model`'s weights; its `decode` on the same raw latent."""
    import diffusers

    from ldmkit.interop.export_diffusers import (
        autoencoder_config_to_diffusers,
        autoencoder_state_to_diffusers,
    )

    config = autoencoder_config_to_diffusers(model)
    state = autoencoder_state_to_diffusers(model, config)
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    peer = diffusers.AutoencoderKL(**config).eval()
    peer.load_state_dict(state)

    def decode(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return peer.decode(z).sample

    return decode


def latent(side: int) -> torch.Tensor:
    return torch.randn(1, 4, side // 8, side // 8, generator=torch.Generator().manual_seed(0))


def timed(paths: list[str], side: int, rounds: int) -> list[dict]:
    """Round robin: median seconds per path and the largest difference from the plain path."""
    run, z = decoders(paths), latent(side)
    images = {name: decode(z) for name, decode in run.items()}  # warm-up, and the images
    reference = images.get("ldmkit plain")
    seconds: dict[str, list[float]] = {name: [] for name in run}
    for _ in range(rounds):
        for name, decode in run.items():
            start = time.perf_counter()
            decode(z)
            seconds[name].append(time.perf_counter() - start)
    rows = []
    for name in run:
        diff = None if reference is None else (images[name] - reference).abs().max().item()
        rows.append({
            "path": name,
            "side": side,
            "seconds": [round(s, 2) for s in seconds[name]],
            "median_s": round(statistics.median(seconds[name]), 2),
            "max_abs_diff_vs_plain": diff,
        })  # fmt: skip
    return rows


def _resident_gib() -> float:
    with open("/proc/self/statm") as statm:  # Linux: pages resident
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**30


def memory_child(path: str, side: int) -> dict:
    """One decode by `path` in this fresh process: how far its resident memory rose above what
    it held before (sampled every 2 ms; the process's lifetime peak includes building)."""
    decode, z = decoders([path])[path], latent(side)
    before, peak, done = _resident_gib(), [0.0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _resident_gib())
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    decode(z)
    done.set()
    watcher.join()
    return {"path": path, "side": side, "decode_peak_growth_gib": round(peak[0] - before, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.side)))
        return
    from ldmkit.hardware import machine_report

    print("machine:", json.dumps(machine_report()), flush=True)
    print(json.dumps(bf16_quality()), flush=True)
    rows = timed(args.paths, args.side, args.rounds)
    for row in rows:
        print(json.dumps(row), flush=True)
    growth = {}
    for path in args.paths:
        command = [sys.executable, __file__, "--memory-child", path, "--side", str(args.side)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        line = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(line), flush=True)
        growth[path] = line["decode_peak_growth_gib"]
    plain = next((r["median_s"] for r in rows if r["path"] == "ldmkit plain"), None)
    print(f"\n| path ({args.side}x{args.side}) | s | vs plain | max abs diff | peak growth GiB |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        ratio = f"{plain / row['median_s']:.2f}x" if plain else "-"
        diff = row["max_abs_diff_vs_plain"]
        print(
            f"| {row['path']} | {row['median_s']:.2f} | {ratio} | "
            f"{'-' if diff is None else f'{diff:.1e}'} | {growth[row['path']]:.2f} |"
        )


if __name__ == "__main__":
    main()
