"""Train a KL or VQ autoencoder: two optimisers (autoencoder, discriminator), exact resume."""

import json
import math
from pathlib import Path
from typing import Any

import torch

from ldmkit.autoencoder import Autoencoder, AutoencoderLoss, measure_latent_statistics
from ldmkit.checkpoint import save_autoencoder, write_json
from ldmkit.config import save_yaml, to_dict
from ldmkit.data.collate import collate
from ldmkit.data.factory import build_dataset
from ldmkit.hardware import select_device
from ldmkit.images import image_grid
from ldmkit.metrics.image_quality import psnr
from ldmkit.precision import autocast, resolve_precision
from ldmkit.training.checkpoints import (
    write_checkpoint,
)
from ldmkit.training.config import AutoencoderTrainConfig
from ldmkit.training.data_record import check_bucket_step, record_data
from ldmkit.training.data_stream import train_loader
from ldmkit.training.loop import TrainResult, run_steps
from ldmkit.training.lr_schedule import lr_multiplier
from ldmkit.training.progress_bar import TrainingProgress
from ldmkit.training.run_folder import restore, resume_point, run_lock, start_run
from ldmkit.training.run_log import RunLog
from ldmkit.training.runtime import (
    rng_state,
    seed_everything,
    set_threads,
    tune_allocator,
)
from ldmkit.training.train_state import save_train_state
from ldmkit.training.visuals import save_loss_curve


def build_perceptual(config: AutoencoderTrainConfig) -> torch.nn.Module | None:
    """The LPIPS network from local files, or None when the perceptual weight is 0."""
    if config.loss.perceptual_weight <= 0:
        return None
    if not (config.loss.lpips_vgg_path and config.loss.lpips_lin_path):
        raise ValueError(
            "loss.perceptual_weight > 0 needs loss.lpips_vgg_path and loss.lpips_lin_path "
            "(local weight files, see docs/lpips.md), or set loss.perceptual_weight=0"
        )
    from ldmkit.autoencoder.lpips import LPIPS

    return LPIPS.from_files(Path(config.loss.lpips_vgg_path), Path(config.loss.lpips_lin_path))


def train_autoencoder(
    config: AutoencoderTrainConfig, run_dir: Path, resume: bool = True, show_progress: bool = True
) -> TrainResult:
    """Train per `config` into `run_dir` (checkpoints, pictures, final model in run_dir/model);
    `resume` continues from the newest intact checkpoint there, and the run holds the folder's
    lock throughout."""
    with run_lock(Path(run_dir)):
        return _train_autoencoder(config, Path(run_dir), resume, show_progress)


def _train_autoencoder(
    config: AutoencoderTrainConfig, run_dir: Path, resume: bool, show_progress: bool
) -> TrainResult:
    if config.model.kind == "pixel":
        raise ValueError(
            "model.kind 'pixel' has nothing to train; for pixel-space diffusion pass "
            "`--autoencoder pixels` to `ldmkit train`"
        )
    run, run_dir = config.run, Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    set_threads(run.threads)
    tune_allocator()
    seed_everything(run.seed)
    device = select_device(run.device)
    precision = resolve_precision(run.precision, device)  # auto: bf16 if native

    model = Autoencoder(config.model).to(device)
    loss_fn = AutoencoderLoss(
        config.loss, config.model.kind, config.model.in_channels, build_perceptual(config)
    ).to(device)
    ae_params = [p for p in model.parameters()] + [p for p in [loss_fn.logvar] if p.requires_grad]
    opt_ae = torch.optim.Adam(ae_params, lr=config.optim.lr, betas=config.optim.betas)
    disc_lr = config.optim.disc_lr or config.optim.lr
    opt_d = torch.optim.Adam(
        loss_fn.discriminator.parameters(), lr=disc_lr, betas=config.optim.betas
    )
    modules = {"autoencoder": model, "loss": loss_fn}
    optimizers = {"autoencoder": opt_ae, "discriminator": opt_d}

    start_run(run_dir, resume)  # --no-resume: this run starts over
    start = resume_point(run_dir, resume)
    state = restore(start, config, ("model", "loss", "data", "optim"), modules, optimizers, device)
    save_yaml(config, run_dir / "config.yaml")

    check_bucket_step(config.data, model.factor, "this autoencoder")
    train_data = build_dataset(config.data, "train")
    streams = (1, run.num_workers) if config.data.stream else None
    record_data(run_dir, config.data, train_data, state.step, state.history, streams)
    heldout_data = build_dataset(config.data, "heldout", run.heldout_images)
    shown = range(min(run.heldout_images, len(heldout_data)))  # type: ignore[arg-type]
    heldout = collate([heldout_data[i] for i in shown])["image"].to(device)
    loader = train_loader(
        train_data, config.data, run.batch_size, run.seed, state.step, run.steps, run.num_workers
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def save(at_step: int) -> None:
        def write(tmp: Path) -> None:
            save_train_state(tmp, modules, optimizers, rng_state(device), state.as_info(at_step))
            (tmp / "config.json").write_text(json.dumps(to_dict(config), indent=2))

        write_checkpoint(run_dir, at_step, write, run.keep_checkpoints)
        write_json(run_dir / "history.json", state.history)

    def snapshot(at_step: int) -> float:
        model.eval()
        with torch.no_grad():
            rec = model(heldout, sample_posterior=False).reconstruction.float().clamp(-1, 1)
        model.train()
        grid = image_grid(torch.cat([heldout, rec]), nrow=len(heldout))
        grid.save(run_dir / "reconstructions.png")
        (run_dir / "samples").mkdir(exist_ok=True)
        grid.save(run_dir / "samples" / f"recon-{at_step:08d}.png")
        return float(psnr(rec, heldout).mean())

    def train_step(batch: dict[str, Any], step: int) -> dict[str, Any] | None:
        x = batch["image"].to(device, non_blocking=True)
        o = config.optim
        lr_scale = lr_multiplier(step, run.steps, o.warmup_steps, o.schedule, o.min_lr_ratio)
        for group in opt_ae.param_groups:
            group["lr"] = config.optim.lr * lr_scale
        with autocast(device, precision):
            out = model(x, sample_posterior=run.sample_posterior)
            g_loss, logs = loss_fn.generator_loss(x, out, step, model.decoder.last_layer)
        if not math.isfinite(logs["loss"]):
            return None
        opt_ae.zero_grad(set_to_none=True)
        scaler.scale(g_loss).backward()
        if config.optim.grad_clip > 0:
            scaler.unscale_(opt_ae)
            torch.nn.utils.clip_grad_norm_(ae_params, config.optim.grad_clip)
        scaler.step(opt_ae)
        if loss_fn.disc_active(step):
            with autocast(device, precision):
                d_loss, d_logs = loss_fn.discriminator_loss(x, out.reconstruction, step)
            opt_d.zero_grad(set_to_none=True)
            scaler.scale(d_loss).backward()
            scaler.step(opt_d)
            logs.update(d_logs)
        scaler.update()
        restart = run.dead_code_restart_every
        if model.quantize is not None and restart and (step + 1) % restart == 0:
            logs["restarted_codes"] = model.quantize.restart_dead_codes(
                out.posterior.mean, config.model.dead_code_threshold
            )
            logs["dead_codes"] = int(
                model.quantize.dead_codes(config.model.dead_code_threshold).sum()
            )
        return logs

    model.train()
    loss_fn.train()
    log = RunLog(state.history, run_dir / "tensorboard", run.tensorboard)
    budget = 60 * run.max_minutes - state.elapsed if run.max_minutes else None
    bar = TrainingProgress(
        run.steps, state.step, enabled=show_progress, title="autoencoder", budget_s=budget
    )
    cadence = run.cadence(run.image_every)
    with bar:
        run_steps(
            loader,
            state,
            cadence,
            train_step,
            lambda at_step: {"val_psnr": snapshot(at_step)},
            save,
            log,
            bar,
        )

    step, elapsed = state.step, state.elapsed
    state.save_unless_saved(save)
    log.append({"step": step, "time_s": round(elapsed, 2), "val_psnr": snapshot(step)})
    log.close()
    write_json(run_dir / "history.json", state.history)
    save_loss_curve(
        state.history,
        run_dir / "loss.png",
        ("rec", "kl", "codebook", "perplexity", "g_loss", "d_loss", "val_psnr"),
        log_keys=("rec", "kl", "codebook"),
    )
    stat_loader = train_loader(
        train_data, config.data, run.batch_size, run.seed + 1, 0, run.latent_stat_batches
    )
    shift, scale = measure_latent_statistics(model, (b["image"].to(device) for b in stat_loader))
    model.set_latent_statistics(shift, scale)
    extra = {
        "training": {
            "steps": step,
            "elapsed_s": round(elapsed, 1),
            "precision": precision,
            "data": to_dict(config.data),
        }
    }
    model_dir = save_autoencoder(model, run_dir / "model", extra)
    return TrainResult(model_dir, step, elapsed, state.history)
