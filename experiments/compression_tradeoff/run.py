"""The paper's compression trade-off (Rombach et al. 2022, Figs. 6-7) at laptop scale.

    python experiments/compression_tradeoff/run.py            # ~2 h on a 2-core CPU

For each downsampling factor f in {1, 2, 4, 8, 16, 32}: a KL autoencoder of that factor trained
with the kl-f4 preset's recipe on 64x64 shapes (f = 1 is pixel space: no autoencoder), then a
class-conditional diffusion model with the same UNet width, batch size and step count on its
latents, scored at several checkpoints along the way: FID/KID in the shipped shapes evaluator's
features against
held-out images, class adherence, training wall-clock and sampling throughput. At the end, each
final model is sampled with several DDIM step counts (FID against throughput, Fig. 7).

Every finished stage is recorded in OUT/results.json and skipped when the command is run again,
so an interrupted run continues where it stopped. `report.py` turns the JSON into
docs/results/compression_tradeoff.md and its plots (run here at the end). Run nothing else heavy
beside it: the wall-clock figures are part of the result.
"""

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch

from ldmkit.assets import SHAPES_EVALUATOR
from ldmkit.checkpoint import PIXELS, load_autoencoder, load_evaluator, load_latent_diffusion
from ldmkit.conditioning import ClassCondition
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset
from ldmkit.diffusion import DiffusionLossConfig
from ldmkit.evaluation.adherence import score_adherence
from ldmkit.evaluation.fid import dataset_features, distribution_scores
from ldmkit.evaluation.generate import embed, generate
from ldmkit.evaluation.reconstruction import evaluate_reconstruction
from ldmkit.hardware import machine_report
from ldmkit.images import image_grid
from ldmkit.metrics.class_evaluator import ClassEvaluator
from ldmkit.pipeline import DiffusionConfig
from ldmkit.precision import resolve_precision
from ldmkit.samplers import SamplingOptions
from ldmkit.training.autoencoder_trainer import train_autoencoder
from ldmkit.training.config import (
    AutoencoderTrainConfig,
    DiffusionRunConfig,
    DiffusionTrainConfig,
    OptimConfig,
)
from ldmkit.training.diffusion_presets import SHAPES_CLASSES
from ldmkit.training.diffusion_trainer import train_diffusion
from ldmkit.training.presets import PRESETS
from ldmkit.unet import UNetConfig

RESOLUTION = 64
# Latent channels per factor, growing with compression as in the paper's first stages (Tab. 8).
LATENT_CHANNELS = {1: 3, 2: 3, 4: 3, 8: 4, 16: 8, 32: 16}
# Encoder/decoder channel multipliers per factor: one level per halving.
AE_CH_MULT = {2: (1, 2), 4: (1, 2, 4), 8: (1, 2, 4, 4), 16: (1, 2, 4, 4, 4), 32: (1, 2, 4, 4, 4, 4)}
HELDOUT_REAL = 1000  # reference features; a further `n` held-out images give the FID floor


def shapes(size: int, single_object: bool = True) -> DataConfig:
    return DataConfig(resolution=RESOLUTION, size=size, single_object=single_object)


def autoencoder_config(factor: int, steps: int, objects: str) -> AutoencoderTrainConfig:
    """The CPU kl-f4 recipe (width 16, bf16 where native, batch 16) with this factor's levels
    and channels, on one-object images or on the presets' one-to-four-object images."""
    base = PRESETS["kl-f4"]
    model = dataclasses.replace(
        base.model, channel_mult=AE_CH_MULT[factor], z_channels=LATENT_CHANNELS[factor]
    )
    run = dataclasses.replace(base.run, steps=steps, image_every=steps, checkpoint_every=steps)
    data = shapes(20000 if objects == "multi" else 10000, single_object=objects == "single")
    return dataclasses.replace(base, model=model, data=data, run=run)


def unet_config(factor: int, width: int) -> UNetConfig:
    """The same UNet for every factor: three levels (fewer when the latent is too small to
    halve twice), one ResBlock each, a transformer at the lowest level and in the middle."""
    side = RESOLUTION // factor
    levels = min(3, side.bit_length())  # a 2x2 latent has two levels: 2x2 and 1x1
    channels = LATENT_CHANNELS[factor]
    return UNetConfig(
        in_channels=channels,
        out_channels=channels,
        model_channels=width,
        channel_mult=(1, 2, 2)[:levels],
        num_res_blocks=1,
        attention_resolutions=(2 ** (levels - 1),),
        num_head_channels=32,
        context_dim=None,
        num_classes=SHAPES_CLASSES + 1,
    )


def diffusion_config(factor: int, autoencoder: str, args: argparse.Namespace, steps: int):
    model = DiffusionConfig(
        unet=unet_config(factor, args.width),
        loss=DiffusionLossConfig(min_snr_gamma=5.0),
        conditioners=(ClassCondition(num_classes=SHAPES_CLASSES),),
        latent_size=RESOLUTION // factor,
    )
    # A constant learning rate after warm-up, so that the run can stop at each evaluation point
    # and resume exactly (a cosine schedule would depend on where the run ends).
    optim = OptimConfig(lr=5e-4, betas=(0.9, 0.999), warmup_steps=100)
    run = DiffusionRunConfig(
        steps=steps,
        batch_size=args.batch,
        precision="auto",  # bf16 where native, else fp32
        sample_every=0,
        checkpoint_every=0,
        keep_checkpoints=1,
    )
    return DiffusionTrainConfig(
        autoencoder=autoencoder, model=model, data=shapes(10000), optim=optim, run=run
    )


def sample_scores(
    model_dir: Path,
    evaluator: ClassEvaluator,
    real: torch.Tensor,
    n: int,
    steps: int,
    grid: Path | None = None,
) -> dict[str, Any]:
    """FID/KID, adherence and throughput of `n` DDIM samples (no guidance), classes cycled."""
    model = load_latent_diffusion(model_dir)
    options = SamplingOptions("ddim", steps, guidance=1.0, seed=0)
    images, labels, seconds = generate(model, n, options, batch_size=64)
    assert labels is not None
    if grid is not None:
        image_grid(images[:SHAPES_CLASSES], nrow=10).save(grid)
    scores = distribution_scores(real, embed(evaluator, images))
    return {
        "sample_steps": steps,
        **scores,
        **score_adherence(evaluator, images, labels),
        "images_per_s": n / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/compression_tradeoff"))
    parser.add_argument("--report", type=Path, default=Path("docs/results/compression_tradeoff.md"))
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--ae-steps", type=int, default=2800, help="the kl-f4 preset's steps")
    parser.add_argument(
        "--ae-objects",
        choices=["multi", "single"],
        default="multi",
        help="autoencoder training images: 1-4 objects (the presets' data) or one object",
    )
    parser.add_argument("--ldm-steps", type=int, default=1500)
    parser.add_argument("--evals", type=int, default=4, help="evaluation points along training")
    parser.add_argument("--n", type=int, default=256, help="samples per evaluation")
    parser.add_argument("--sample-steps", type=int, default=25)
    parser.add_argument("--throughput-steps", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--width", type=int, default=32, help="UNet model_channels")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    results: dict[str, Any] = (
        json.loads(results_path.read_text()) if results_path.exists() else {"runs": {}}
    )
    results["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    cpu = machine_report()["cpu"]
    results["machine"] = (
        f"{cpu['name']} ({cpu['capability']}), {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}"
    )
    results["precision"] = resolve_precision("auto", torch.device("cpu"))  # what "auto" ran

    def save() -> None:
        results_path.write_text(json.dumps(results, indent=2))

    evaluator = load_evaluator(SHAPES_EVALUATOR)
    heldout = build_dataset(dataclasses.replace(shapes(10000), cache=False), "heldout")
    features = dataset_features(evaluator, heldout, HELDOUT_REAL + args.n)
    real, floor_part = features[:HELDOUT_REAL], features[HELDOUT_REAL:]
    results["fid_floor"] = distribution_scores(real, floor_part)  # real vs real at this n
    save()

    # Stage 1: the first stages, one after another.
    for f in args.factors:
        entry = results["runs"].setdefault(str(f), {"factor": f})
        if f == 1 or "autoencoder" in entry:
            continue
        result = train_autoencoder(
            autoencoder_config(f, args.ae_steps, args.ae_objects),
            args.out / f"ae-f{f}",
            resume=False,
        )
        ae = load_autoencoder(result.model_dir)
        quality = evaluate_reconstruction(ae, heldout, 512, features=evaluator)
        entry["autoencoder"] = {
            "steps": result.step,
            "train_s": result.elapsed_s,
            "latent": [LATENT_CHANNELS[f], RESOLUTION // f, RESOLUTION // f],
            **quality,
        }
        save()
        print(json.dumps({"factor": f, **entry["autoencoder"]}), flush=True)

    # Stage 2: the diffusion models, each trained to every evaluation point in turn.
    points = [round(args.ldm_steps * (i + 1) / args.evals) for i in range(args.evals)]
    for f in args.factors:
        entry = results["runs"][str(f)]
        autoencoder = PIXELS if f == 1 else str(args.out / f"ae-f{f}" / "model")
        run_dir = args.out / f"ldm-f{f}"
        evals = entry.setdefault("evals", [])
        for step in points:
            if any(e["step"] == step for e in evals):
                continue
            config = diffusion_config(f, autoencoder, args, step)
            started = time.perf_counter()
            result = train_diffusion(config, run_dir, resume=True)
            call_s = time.perf_counter() - started
            scores = sample_scores(
                result.model_dir, evaluator, real, args.n, args.sample_steps,
                run_dir / f"grid-{step:05d}.png",
            )  # fmt: skip
            evals.append({"step": step, "train_s": result.elapsed_s, "call_s": call_s, **scores})
            entry["unet_params"] = sum(
                p.numel() for p in load_latent_diffusion(result.model_dir).unet.parameters()
            )
            save()
            print(json.dumps({"factor": f, **evals[-1]}), flush=True)

    # Stage 3: FID against sampling throughput for the final models (the paper's Fig. 7).
    for f in args.factors:
        entry = results["runs"][str(f)]
        sweep = entry.setdefault("throughput", [])
        for steps in args.throughput_steps:
            if any(s["sample_steps"] == steps for s in sweep):
                continue
            model_dir = args.out / f"ldm-f{f}" / "model"
            sweep.append(sample_scores(model_dir, evaluator, real, args.n, steps))
            save()
            print(json.dumps({"factor": f, **sweep[-1]}), flush=True)

    from report import write_report  # the sibling module; this folder is on sys.path

    write_report(results, args.out, args.report)


if __name__ == "__main__":
    main()
