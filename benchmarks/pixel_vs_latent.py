"""Time per denoising step of one UNet in pixel space (f=1) against f=4 and f=8 latents.

    python benchmarks/pixel_vs_latent.py --preset small --batch 4 --repeats 5

The paper's reason to exist: the same denoiser costs far less on a latent of side H/f. Channels:
3 for pixels and f=4 (the kl-f4 preset), 4 for f=8 (kl-f8). Forward passes only, no grad, fp32.
"""

import argparse
import json
import time

import torch

from ldmkit.hardware import machine_report
from ldmkit.unet import UNet, unet_preset


def time_step(unet: UNet, x: torch.Tensor, repeats: int) -> float:
    """Median seconds of one denoiser call on `x`."""
    t = torch.full((x.shape[0],), 500)
    with torch.no_grad():
        unet(x, t)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            unet(x, t)
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    args = parser.parse_args()
    print("machine:", json.dumps(machine_report()))
    print(f"UNet preset {args.preset}, batch {args.batch}, {torch.get_num_threads()} threads")
    print("| image | f | latent | ms / step | speed-up vs f=1 |")
    print("| --- | --- | --- | --- | --- |")
    for size in args.sizes:
        base = None
        for f, channels in ((1, 3), (4, 3), (8, 4)):
            unet = UNet(
                unet_preset(
                    args.preset, in_channels=channels, out_channels=channels, context_dim=None
                )
            ).eval()
            side = size // f
            seconds = time_step(unet, torch.randn(args.batch, channels, side, side), args.repeats)
            base = base or seconds
            print(
                f"| {size}x{size} | {f} | {channels}x{side}x{side} | {seconds * 1e3:.1f} | "
                f"{base / seconds:.1f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
