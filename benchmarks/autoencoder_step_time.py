"""Seconds per training step of candidate f=4 autoencoders: the kl-f4 recipe (batch 16, bf16)
with other widths, levels and space-to-depth stems, on 512 shapes images.

    python benchmarks/autoencoder_step_time.py [NAME ...]

Each config trains 10 and then 60 steps; the difference over 50 steps is reported, so start-up,
the final save and the latent statistics cancel. Run it alone: the timings are the point.
"""

import dataclasses
import json
import sys
import tempfile
from pathlib import Path

from ldmkit.training.autoencoder_trainer import train_autoencoder
from ldmkit.training.presets import PRESETS

CANDIDATES: dict[str, dict] = {
    "kl-f4": {},
    "p2-ch32": dict(patch=2, model_channels=32, channel_mult=(1, 2)),
    "p2-ch24": dict(patch=2, model_channels=24, channel_mult=(1, 2)),
    "p4-ch64": dict(patch=4, model_channels=64, channel_mult=(1,)),
}


def seconds(steps: int, model_overrides: dict) -> float:
    base = PRESETS["kl-f4"]
    never = 10**6
    run = dataclasses.replace(
        base.run, steps=steps, image_every=never, checkpoint_every=never, log_every=never
    )
    config = dataclasses.replace(
        base,
        model=dataclasses.replace(base.model, **model_overrides),
        run=run,
        data=dataclasses.replace(base.data, size=512),
    )
    with tempfile.TemporaryDirectory() as tmp:
        result = train_autoencoder(config, Path(tmp) / "run", resume=False, show_progress=False)
    return result.elapsed_s


def main() -> None:
    for name in sys.argv[1:] or list(CANDIDATES):
        if name not in CANDIDATES:
            raise SystemExit(f"unknown config {name!r}; choose from {', '.join(CANDIDATES)}")
        per_step = (seconds(60, CANDIDATES[name]) - seconds(10, CANDIDATES[name])) / 50
        print(json.dumps({"name": name, "seconds_per_step": round(per_step, 4)}), flush=True)


if __name__ == "__main__":
    main()
