"""Which precision is fast on this machine: fp32 against bf16 (and fp16) autocast, per workload.

    python benchmarks/precision_speed.py
    python benchmarks/precision_speed.py --precisions fp32 bf16 fp16 --rounds 5

Half precision is only faster where the hardware computes it: on x86, AVX-512 BF16 or AMX for
bf16 (AVX-512 FP16 or AMX-FP16 for fp16). Elsewhere autocast runs fallback kernels that are many
times slower than fp32, which is why `ldmkit.precision.resolve_precision` warns and `auto` keeps
fp32 there. This prints the CPU's report and what `auto` picks, then times three workloads of the
CPU presets, each precision in turn per round (this machine is noisy), medians in milliseconds:

- `sample`: one no-grad forward of the `shapes-class` UNet at the sampling batch (2 x 30
  latents of 3 x 16 x 16: classifier-free guidance doubles the batch);
- `ldm train`: one forward + backward of that UNet at its training batch (64);
- `ae train`: one forward + backward (L1 reconstruction) of the `kl-f4` autoencoder at its
  training batch (16 images of 64 x 64).
"""

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from ldmkit.autoencoder import Autoencoder
from ldmkit.hardware import machine_report
from ldmkit.precision import DTYPES, autocast, native_precision, resolve_precision
from ldmkit.training.diffusion_presets import DIFFUSION_PRESETS
from ldmkit.training.presets import PRESETS
from ldmkit.unet import UNet


def workloads(precision: str) -> dict[str, Callable[[], None]]:
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    unet = UNet(DIFFUSION_PRESETS["shapes-class"].model.unet)
    autoencoder = Autoencoder(PRESETS["kl-f4"].model)
    z = torch.randn(64, 3, 16, 16)
    t = torch.randint(0, 1000, (64,))
    y = torch.randint(0, 30, (64,))
    images = torch.rand(16, 3, 64, 64) * 2 - 1

    def sample() -> None:
        with torch.no_grad(), autocast(cpu, precision):
            unet(z[:60], t[:60], y=y[:60])

    def ldm_train() -> None:
        unet.zero_grad(set_to_none=True)  # as after an optimiser step
        with autocast(cpu, precision):
            loss = unet(z, t, y=y).float().square().mean()
        loss.backward()

    def ae_train() -> None:
        autoencoder.zero_grad(set_to_none=True)
        with autocast(cpu, precision):
            out = autoencoder(images)
            loss = (out.reconstruction.float() - images).abs().mean()
        loss.backward()

    return {"sample": sample, "ldm train": ldm_train, "ae train": ae_train}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=list(DTYPES))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if "fp32" not in args.precisions:
        parser.error("--precisions needs fp32: the speed-ups are against it")
    cpu = torch.device("cpu")
    print("machine:", json.dumps(machine_report()))
    native = {p: native_precision(cpu, p) for p in args.precisions}
    print(json.dumps({"native": native, "auto": resolve_precision("auto", cpu)}))
    calls = {p: workloads(p) for p in args.precisions}
    ms: dict[str, dict[str, list[float]]] = {p: {} for p in args.precisions}
    for work in calls.values():
        for call in work.values():
            call()  # warm-up: first-call allocations and kernel selection
    for _ in range(args.rounds):
        for precision, work in calls.items():
            for name, call in work.items():
                start = time.perf_counter()
                call()
                ms[precision].setdefault(name, []).append(1000 * (time.perf_counter() - start))
    reference = {name: statistics.median(times) for name, times in ms["fp32"].items()}
    for precision in args.precisions:
        row: dict[str, object] = {"precision": precision}
        for name, times in ms[precision].items():
            median = statistics.median(times)
            row[f"{name} ms"] = round(median, 1)
            row[f"{name} vs fp32"] = round(reference[name] / median, 2)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
