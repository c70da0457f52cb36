"""Megapixel images from a Stable Diffusion-shaped model: tiled denoising and tiled decoding,
their time and peak memory, and how far a tiled decode is from the whole one.

    python benchmarks/megapixel.py                      # everything below (about 25 min)
    python benchmarks/megapixel.py --parts quality      # the seam measurement alone (1 min)
    python benchmarks/megapixel.py --parts quality --autoencoder runs/kl-f8/model  # another
    python benchmarks/megapixel.py --parts statistics   # fp32 vs bf16 statistics pass (8 min)

Parts, each setting in a fresh process (peak resident memory is per process; nothing else
heavy should run beside it):

- `quality`: the shipped, trained shapes autoencoder (f=4) decodes the latent of a 1024x1024
  mosaic whole, in tiles (`decode(tile=)`: halos and shared group-norm statistics) and by the
  blending of independently decoded tiles that it replaced: PSNR and max difference against
  the whole decode, and the seam ratio (the mean jump of the difference across tile borders
  over its mean jump elsewhere: 1 = no seam). Writes docs/images/megapixel_seams.png.
- `decode`: an SD-shaped kl-f8 decoder (random weights: time and memory do not depend on them)
  at 1024x1024 whole and tiled, round robin, and 2048x2048 tiled and whole.
- `statistics`: the tiled decode's statistics pass in float32 and in bfloat16 (the default
  where the CPU runs bf16 natively) against the whole decode, at 1024x1024, round robin in one
  process.
- `image`: the SD 1.5-shaped file of `sd_single_file.py` in bf16 at 1024x1024 and 2048x2048
  with `tile=64` (its training side): one guided UNet step in blended tiles, then the tiled
  decode, with the peak memory after each.
"""

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SEAMS_PNG = ROOT / "docs/images/megapixel_seams.png"


def _peak_gib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def sd_decoder() -> torch.nn.Module:
    """Stable Diffusion's kl-f8 decoder architecture with random weights."""
    from ldmkit.autoencoder import Autoencoder, AutoencoderConfig

    config = AutoencoderConfig(
        model_channels=128, channel_mult=(1, 2, 4, 4), num_res_blocks=2, z_channels=4
    )
    return Autoencoder(config).eval()


def decode_child(side: int, tile: int | None) -> dict:
    """Decode one random latent for a side x side image; seconds and peak memory."""
    model = sd_decoder()
    z = torch.randn(1, 4, side // 8, side // 8, generator=torch.Generator().manual_seed(0))
    loaded = _peak_gib()
    with torch.no_grad():
        start = time.perf_counter()
        image = model.decode(z, tile)
        seconds = time.perf_counter() - start
    assert image.shape[-1] == side and torch.isfinite(image).all()
    return {
        "part": "decode",
        "side": side,
        "tile": tile,
        "seconds": round(seconds, 1),
        "peak_rss_gib": _peak_gib(),
        "before_decode_gib": loaded,
    }


def statistics_child(rounds: int) -> dict:
    """The statistics pass's precision, in one process round robin at 1024x1024 (tiles of 64):
    the whole decode, tiles with a float32 estimate, tiles with a bfloat16 one (the default
    where the CPU has native bf16)."""
    from ldmkit.autoencoder.tiled_decoder import decode_in_tiles

    model = sd_decoder()
    z = torch.randn(1, 4, 128, 128, generator=torch.Generator().manual_seed(0))
    runs = {
        "whole": lambda: model.decoder(z),
        "tiles, fp32 statistics": lambda: decode_in_tiles(model.decoder, z, 64, None),
        "tiles, bf16 statistics": lambda: decode_in_tiles(model.decoder, z, 64, torch.bfloat16),
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    with torch.no_grad():
        for _ in range(rounds):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                seconds[name].append(round(time.perf_counter() - start, 1))
    whole = sum(seconds["whole"]) / rounds
    ratios = {name: round(sum(s) / rounds / whole, 3) for name, s in seconds.items()}
    return {"part": "statistics", "side": 1024, "seconds": seconds, "vs_whole": ratios}


def image_child(side: int, tile: int) -> dict:
    """One guided bf16 UNet step in tiles, then the tiled decode, of a side x side image."""
    from sd_single_file import FILE, build

    import ldmkit
    from ldmkit.samplers import SamplingOptions

    if not FILE.is_file():
        build(FILE)
    model = ldmkit.load(FILE, precision="bf16")
    loaded = _peak_gib()
    marks: list[float] = []
    options = SamplingOptions(sampler="ddim", steps=1, precision="bf16", tile=tile)
    start = time.perf_counter()
    image = model.sample(
        1,
        prompts=["a photo of a cat"],
        options=options,
        latent_size=side // 8,
        callback=lambda step, steps, z: marks.append(time.perf_counter()),
    )
    done = time.perf_counter()
    assert image.shape[-1] == side
    return {
        "part": "image",
        "side": side,
        "tile": tile,
        "step_s": round(marks[0] - start, 1),
        "decode_s": round(done - marks[0], 1),
        "loaded_gib": loaded,
        "peak_rss_gib": _peak_gib(),
    }


def _mosaic(side: int) -> torch.Tensor:
    """A side x side image of 128-pixel shapes scenes (held-out seed), in [-1, 1], rolled by 50
    pixels so that no scene border falls on a tile border."""
    from ldmkit.data.shapes import ShapesConfig, ShapesDataset

    n = side // 128
    data = ShapesDataset(ShapesConfig(resolution=128), size=n * n, seed=1)
    tiles = torch.stack([data[i]["image"] for i in range(n * n)])
    image = tiles.reshape(n, n, 3, 128, 128).permute(2, 0, 3, 1, 4).reshape(1, 3, side, side)
    return image.roll((50, 50), (-2, -1))


def seam_ratio(difference: torch.Tensor, borders: list[int]) -> float:
    """Mean |jump| of `difference` across the given columns and rows, over its mean elsewhere."""
    d = difference.abs().mean(1)[0] if difference.ndim == 4 else difference
    jumps_x = (d[:, 1:] - d[:, :-1]).abs()
    jumps_y = (d[1:, :] - d[:-1, :]).abs()
    at = [b - 1 for b in borders if 0 < b < d.shape[-1]]
    on = torch.cat([jumps_x[:, at].flatten(), jumps_y[at, :].flatten()]).mean()
    mask_x = torch.ones(jumps_x.shape[-1], dtype=torch.bool)
    mask_x[at] = False
    off = torch.cat([jumps_x[:, mask_x].flatten(), jumps_y[mask_x, :].flatten()]).mean()
    return float(on / off)


def quality_child(path: str | None = None, side: int = 1024) -> dict:
    """Whole, tiled and blended decodes of a trained autoencoder (the shipped shapes kl-f4 unless
    `path` names another) on a side x side mosaic; the seam picture for the shipped one at 1024
    only."""
    from ldmkit.assets import SHAPES_AUTOENCODER
    from ldmkit.autoencoder.tiled_decoder import tile_bounds
    from ldmkit.checkpoint import load_autoencoder
    from ldmkit.nn import tiled_apply
    from ldmkit.nn.tiling import tile_starts

    model = load_autoencoder(path or SHAPES_AUTOENCODER).eval()
    f = model.factor
    rows = []
    with torch.no_grad():
        z = model.to_latent(_mosaic(side))
        whole = model.from_latent(z).clamp(-1, 1)
        pictures = []
        for tile in (64, 32):
            tiled = model.from_latent(z, tile).clamp(-1, 1)
            blended = tiled_apply(
                lambda r, c: model.from_latent(z[..., r, c]),
                *z.shape[-2:],
                tile=tile,
                overlap=tile // 4,
                scale=f,
            ).clamp(-1, 1)
            starts = tile_starts(z.shape[-1], tile, tile // 4)
            blend_borders = sorted({s * f for s in starts} | {(s + tile) * f for s in starts})
            tile_borders = [a * f for a, _ in tile_bounds(z.shape[-1], tile)]
            for name, out, borders in (
                ("tiled", tiled, tile_borders),
                ("blended", blended, blend_borders),
            ):
                diff = out - whole
                mse = diff.pow(2).mean().item()
                rows.append({
                    "part": "quality",
                    "method": name,
                    "tile": tile,
                    "psnr_db": round(10 * math.log10(4 / mse), 1),
                    "max_abs": round(diff.abs().max().item(), 3),
                    "seam_ratio": round(seam_ratio(diff, borders), 2),
                })  # fmt: skip
                if tile == 32:
                    pictures.append(diff)
    if path is None and side == 1024:
        _write_seams(pictures, ("tiled", "blended"))
    return {"part": "quality", "autoencoder": path or "shipped kl-f4", "side": side, "rows": rows}


def _write_seams(differences: list[torch.Tensor], names: tuple[str, ...]) -> None:
    """|tiled - whole| and |blended - whole|, x8, side by side (white = 1/8 or more)."""
    from PIL import Image, ImageDraw

    maps = [d.abs().mean(1)[0].mul(8 * 255).clamp(0, 255).to(torch.uint8) for d in differences]
    side = maps[0].shape[-1] // 2
    canvas = Image.new("L", (2 * side + 8, side + 20), 0)
    for i, (m, name) in enumerate(zip(maps, names, strict=True)):
        small = Image.fromarray(m.numpy()).resize((side, side), Image.Resampling.BOX)
        canvas.paste(small, (i * (side + 8), 20))
        ImageDraw.Draw(canvas).text((i * (side + 8) + 4, 4), f"|{name} - whole| x8", fill=255)
    SEAMS_PNG.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(SEAMS_PNG)


def run_child(args: list[str]) -> dict | None:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"part"')]
    if done.returncode or not lines:
        print(json.dumps({"child": args, "failed": done.stderr.strip()[-600:]}), flush=True)
        return None
    print(lines[-1], flush=True)
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("quality", "decode", "statistics", "image"),
        default=["quality", "decode", "image"],
    )
    parser.add_argument("--rounds", type=int, default=2, help="round-robin rounds at 1024")
    parser.add_argument("--no-whole-2048", action="store_true", help="skip the 14 GB decode")
    parser.add_argument(
        "--autoencoder",
        help="quality: this trained autoencoder instead of the shipped kl-f4 (e.g. the model/ "
        "of `ldmkit train-autoencoder --preset kl-f8`, whose decoder has two tiers)",
    )
    parser.add_argument("--side", type=int, default=1024, help="quality: the mosaic's side")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "quality":
            result = quality_child(rest[1] if len(rest) > 1 else None, int(rest[0]))
        elif kind == "decode":
            result = decode_child(int(rest[0]), None if rest[1] == "whole" else int(rest[1]))
        elif kind == "statistics":
            result = statistics_child(int(rest[0]))
        else:
            result = image_child(int(rest[0]), int(rest[1]))
        print(json.dumps(result))
        return
    from ldmkit.hardware import machine_report

    print("machine:", json.dumps(machine_report()), flush=True)
    if "quality" in args.parts:
        run_child(["quality", str(args.side), *([args.autoencoder] if args.autoencoder else [])])
    if "decode" in args.parts:
        for _ in range(args.rounds):
            run_child(["decode", "1024", "whole"])
            run_child(["decode", "1024", "64"])
        run_child(["decode", "2048", "64"])
        if not args.no_whole_2048:
            run_child(["decode", "2048", "whole"])
    if "statistics" in args.parts:
        run_child(["statistics", str(args.rounds)])
    if "image" in args.parts:
        run_child(["image", "1024", "64"])
        run_child(["image", "2048", "64"])


if __name__ == "__main__":
    main()
