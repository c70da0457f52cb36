"""One training step of a preset's UNet (forward, backward, AdamW) eager against `torch.compile`,
fp32, timed in alternation (round-robin) so machine noise hits both alike.

    python benchmarks/train_step_compiled.py                       # shapes-class, batch 64
    python benchmarks/train_step_compiled.py --preset fmnist-class --batch 32

Says whether compiling training would pay on this machine; the trainers do not compile.
"""

import argparse
import statistics
import time

import torch

from ldmkit.hardware import machine_report
from ldmkit.training.diffusion_presets import DIFFUSION_PRESETS
from ldmkit.unet import UNet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="shapes-class", choices=sorted(DIFFUSION_PRESETS))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    config = DIFFUSION_PRESETS[args.preset].model
    torch.manual_seed(0)
    unet = UNet(config.unet)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    compiled = torch.compile(unet)
    side, channels = config.latent_size, config.unet.in_channels
    x = torch.randn(args.batch, channels, side, side)
    t = torch.randint(0, 1000, (args.batch,))
    classes = config.unet.num_classes  # the UNet's class table (null class included)
    y = torch.randint(0, classes - 1, (args.batch,)) if classes else None
    context = None
    if config.unet.context_dim:
        context = torch.randn(args.batch, 16, config.unet.context_dim)

    def step(net: torch.nn.Module) -> float:
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        out = net(x, t, context=context, y=y)
        out[:, :channels].sub(x).pow(2).mean().backward()
        optimizer.step()
        return time.perf_counter() - start

    print("machine:", machine_report())
    step(unet)
    print(f"compile (first compiled step): {step(compiled):.1f} s", flush=True)
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(args.rounds):
        times["eager"].append(step(unet))
        times["compiled"].append(step(compiled))
    eager, fast = statistics.median(times["eager"]), statistics.median(times["compiled"])
    print(
        f"{args.preset}, batch {args.batch}, {torch.get_num_threads()} threads: eager "
        f"{eager:.3f} s/step, compiled {fast:.3f} s/step, {eager / fast:.2f}x"
    )


if __name__ == "__main__":
    main()
