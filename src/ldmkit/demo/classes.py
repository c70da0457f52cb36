"""`ldmkit demo --classes`: class-conditional latent diffusion on shapes, trained in ~9 CPU minutes.

1. The first stage: the shipped KL f=4 autoencoder (`ldmkit.assets`, made by a documented
   command), or one trained now (`train_autoencoder`); its held-out reconstructions are measured.
2. Train a class-conditional LDM (30 classes: kind x colour) on its latents.
3. Sample every class with classifier-free guidance, draw one labelled row per class, and score
   each sample with the shipped shapes evaluator (does it show the kind and colour asked for?).
4. Write `report.md` / `report.json` with the timings and figures, next to the pictures.
"""

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from ldmkit.assets import SHAPES_AUTOENCODER, SHAPES_EVALUATOR
from ldmkit.checkpoint import (
    load_autoencoder,
    load_evaluator,
    load_latent_diffusion,
    read_config,
    write_json,
)
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset
from ldmkit.data.shapes import NUM_CLASSES, class_name
from ldmkit.evaluation.adherence import score_adherence
from ldmkit.evaluation.generate import sample_classes
from ldmkit.evaluation.reconstruction import evaluate_reconstruction
from ldmkit.images import labelled_grid
from ldmkit.samplers import SamplingOptions
from ldmkit.training.autoencoder_trainer import train_autoencoder
from ldmkit.training.diffusion_presets import DIFFUSION_PRESETS
from ldmkit.training.diffusion_trainer import train_diffusion
from ldmkit.training.presets import PRESETS


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """The demo's budget; the defaults take ~9 minutes on a 2-core CPU."""

    train_autoencoder: bool = False  # False: use the shipped kl-f4 autoencoder
    autoencoder_steps: int = 2800  # when training it (the kl-f4 preset: ~10 min here)
    diffusion_steps: int = 700
    per_class: int = 5  # samples per class in the grid (and in the adherence score)
    guidance: float = 3.0
    sampler: str = "ddim"
    sampling_steps: int = 50
    heldout: int = 256  # held-out images for the reconstruction figures
    train_images: int = 10000  # distinct training images (rendered once, cached)
    seed: int = 0


def _autoencoder(out: Path, config: DemoConfig) -> dict[str, Any]:
    preset = PRESETS["kl-f4"]
    if config.train_autoencoder:
        run = dataclasses.replace(preset.run, steps=config.autoencoder_steps, seed=config.seed)
        data = dataclasses.replace(preset.data, size=config.train_images)
        train = dataclasses.replace(preset, data=data, run=run)
        result = train_autoencoder(train, out, resume=False)
        model_dir, steps, minutes = result.model_dir, result.step, result.elapsed_s / 60
    else:  # shipped; its config.json records how it was trained
        model_dir, minutes = SHAPES_AUTOENCODER, 0.0
        steps = read_config(model_dir, "autoencoder")["training"]["steps"]
    heldout = DataConfig(resolution=preset.data.resolution, cache=False)
    metrics = evaluate_reconstruction(
        load_autoencoder(model_dir),
        build_dataset(heldout, "heldout", config.heldout),
        config.heldout,
    )
    return {
        "model": str(model_dir),
        "trained_now": config.train_autoencoder,
        "steps": steps,
        "train_minutes": round(minutes, 2),
        "heldout_psnr_db": round(metrics["psnr"], 2),
        "heldout_ssim": round(metrics["ssim"], 4),
    }


def _diffusion(out: Path, autoencoder: str, config: DemoConfig) -> dict[str, Any]:
    preset = DIFFUSION_PRESETS["shapes-class-demo"]
    run = dataclasses.replace(preset.run, steps=config.diffusion_steps, seed=config.seed)
    data = dataclasses.replace(preset.data, size=config.train_images)
    train = dataclasses.replace(preset, autoencoder=autoencoder, data=data, run=run)
    result = train_diffusion(train, out, resume=False)
    params = sum(p.numel() for p in load_latent_diffusion(result.model_dir).unet.parameters())
    return {
        "model": str(result.model_dir),
        "steps": result.step,
        "batch_size": run.batch_size,
        "unet_parameters_m": round(params / 1e6, 2),
        "train_minutes": round(result.elapsed_s / 60, 2),
    }


def _samples(out: Path, model_dir: str, config: DemoConfig) -> dict[str, Any]:
    model = load_latent_diffusion(Path(model_dir))
    labels = torch.arange(NUM_CLASSES).repeat_interleave(config.per_class)
    started = time.perf_counter()
    images = sample_classes(
        model,
        labels,
        SamplingOptions(config.sampler, config.sampling_steps, config.guidance, seed=config.seed),
    )
    seconds = time.perf_counter() - started
    names = [class_name(i) for i in range(NUM_CLASSES)]
    labelled_grid(images, config.per_class, names, blocks=3).save(out / "samples_by_class.png")
    scores = score_adherence(load_evaluator(SHAPES_EVALUATOR), images, labels)
    return {
        "n": len(labels),
        "guidance": config.guidance,
        "sampler": f"{config.sampler} {config.sampling_steps} steps",
        **{f"adherence_{k}": round(v, 4) for k, v in scores.items()},
        "seconds_per_image": round(seconds / len(labels), 3),
    }


def run_demo(out: Path, config: DemoConfig | None = None) -> dict[str, Any]:
    """Train both stages, sample every class, score adherence; write the report into `out`."""
    config, out = config or DemoConfig(), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    autoencoder = _autoencoder(out / "autoencoder", config)
    diffusion = _diffusion(out / "ldm", autoencoder["model"], config)
    samples = _samples(out, diffusion["model"], config)
    report = {
        "autoencoder": autoencoder,
        "latent_diffusion": diffusion,
        "samples": samples,
        "total_minutes": round((time.perf_counter() - started) / 60, 2),
    }
    write_json(out / "report.json", report)
    (out / "report.md").write_text(_markdown(report))
    return report


def _markdown(report: dict[str, Any]) -> str:
    ae, ldm, s = report["autoencoder"], report["latent_diffusion"], report["samples"]
    both = s["adherence_both"]
    lines = [
        "# ldmkit demo: class-conditional latent diffusion on shapes",
        "",
        f"Total: {report['total_minutes']} min.",
        "",
        "| stage | what | minutes | result |",
        "| --- | --- | --- | --- |",
        f"| autoencoder | kl-f4, {ae['steps']} steps"
        f"{'' if ae['trained_now'] else ' (shipped, trained earlier)'} | {ae['train_minutes']} | "
        f"held-out PSNR {ae['heldout_psnr_db']} dB, SSIM {ae['heldout_ssim']} |",
        f"| latent diffusion | {ldm['unet_parameters_m']}M-parameter UNet, {ldm['steps']} steps "
        f"at batch {ldm['batch_size']} | {ldm['train_minutes']} | loss curve `ldm/loss.png` |",
        f"| sampling | {s['n']} images, {s['sampler']}, guidance {s['guidance']} | "
        f"{round(s['n'] * s['seconds_per_image'] / 60, 2)} | {s['seconds_per_image']} s/image |",
        "",
        f"Adherence (the shipped evaluator names kind and colour of each sample): kind "
        f"{s['adherence_kind']:.1%}, colour {s['adherence_color']:.1%}, both {both:.1%}.",
        "",
        "![one row per class](samples_by_class.png)",
        "",
        "![autoencoder reconstructions](autoencoder/reconstructions.png)",
        "",
    ]
    return "\n".join(lines)
