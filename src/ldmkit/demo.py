"""`ldmkit demo`: the end-to-end showcase on built-in data, with a short report."""

import dataclasses
from pathlib import Path
from typing import Any

from ldmkit.checkpoint import write_json
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset
from ldmkit.evaluation.reconstruction import evaluate_reconstruction
from ldmkit.training.autoencoder_trainer import train_autoencoder
from ldmkit.training.presets import PRESETS


def run_demo(out: Path, steps: int = 800, heldout: int = 256) -> dict[str, Any]:
    """Train the `kl-f4` autoencoder on shapes for `steps` (~3 min here), evaluate, report."""
    out = Path(out)
    preset = PRESETS["kl-f4"]
    config = dataclasses.replace(preset, run=dataclasses.replace(preset.run, steps=steps))
    result = train_autoencoder(config, out / "autoencoder", resume=False)
    from ldmkit.checkpoint import load_autoencoder

    model = load_autoencoder(result.model_dir)
    data = build_dataset(
        DataConfig(resolution=config.data.resolution, cache=False), "heldout", heldout
    )
    metrics = evaluate_reconstruction(model, data, heldout)
    report = {
        "autoencoder": str(result.model_dir),
        "steps": result.step,
        "train_minutes": round(result.elapsed_s / 60, 2),
        "heldout_psnr_db": round(metrics["psnr"], 2),
        "heldout_ssim": round(metrics["ssim"], 4),
        "encode_images_per_s": round(metrics["encode_images_per_s"], 1),
        "decode_images_per_s": round(metrics["decode_images_per_s"], 1),
        "pictures": [
            str(out / "autoencoder" / "reconstructions.png"),
            str(out / "autoencoder" / "loss.png"),
        ],
    }
    write_json(out / "report.json", report)
    lines = ["# ldmkit demo", "", "KL f=4 autoencoder on 64x64 shapes.", ""]
    lines += [f"- {k}: {v}" for k, v in report.items() if k != "pictures"]
    lines += [
        "",
        "![reconstructions](autoencoder/reconstructions.png)",
        "",
        "![loss](autoencoder/loss.png)",
    ]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return report
