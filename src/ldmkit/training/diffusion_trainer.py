"""Train a latent diffusion model: one process or many (torchrun, DDP), with exact resume.

Every random draw for position j of the global batch of step s comes from a generator seeded by
(seed, s, j), and the batch of step s is a pure function of s. So resuming needs only the step,
the weights, the EMA and the optimiser state (N steps straight equal N/2 + resume + N/2 bitwise
on CPU), and the result does not depend on the number of processes or accumulation steps.
"""

import contextlib
import gc
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from ldmkit.checkpoint import load_first_stage, save_latent_diffusion, write_json
from ldmkit.config import save_yaml, to_dict
from ldmkit.data.factory import build_dataset, data_class_names
from ldmkit.hardware import select_device
from ldmkit.images import image_grid
from ldmkit.pipeline import LatentDiffusion
from ldmkit.precision import autocast, resolve_precision
from ldmkit.samplers import SamplingOptions
from ldmkit.training.checkpoints import (
    write_checkpoint,
)
from ldmkit.training.config import DiffusionTrainConfig
from ldmkit.training.data_record import check_bucket_step, record_data
from ldmkit.training.data_stream import train_loader
from ldmkit.training.distributed import (
    DistributedContext,
    all_ranks_finite,
    average_gradients,
    barrier,
    init_distributed,
    is_main_process,
    rank_checksums,
    shutdown,
)
from ldmkit.training.ema import EMA
from ldmkit.training.fine_tune import check_fine_tune_data
from ldmkit.training.latent_store import stored_latents
from ldmkit.training.loop import TrainResult, run_steps
from ldmkit.training.lora import LORA_FILE, Adapters, save_lora
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


def sample_generators(seed: int, step: int, positions: range) -> list[torch.Generator]:
    """One generator per position of the global batch of `step` (timestep, noise, dropout).

    Keyed by the position in the global batch, not by rank or accumulation slice, so a run's
    randomness is the same however the batch is split.
    """
    return [
        torch.Generator().manual_seed((seed * 1_000_003 + step) * 1_000_003 + j) for j in positions
    ]


def prepare_conditioners(
    config: DiffusionTrainConfig,
    run_dir: Path,
    images: Dataset[dict[str, Any]],
    context: DistributedContext,
    resume: bool,
) -> dict[str, Any]:
    """Each conditioner's files for this run (a text model's tokenizer, learned on the training
    captions or pinned by its config), written once by the main rank and read back by every
    rank; a resumed run keeps the ones it wrote."""
    if context.is_main:
        for entry in config.model.conditioners:
            entry.prepare_training(run_dir, images, config.data.kind, fresh=not resume)  # type: ignore[arg-type]
    barrier(context)
    loaded = {entry.kind: entry.load_files(run_dir) for entry in config.model.conditioners}
    return {kind: files for kind, files in loaded.items() if files is not None}


def train_diffusion(
    config: DiffusionTrainConfig,
    run_dir: Path,
    resume: bool = True,
    show_progress: bool = True,
    initial: LatentDiffusion | None = None,
) -> TrainResult:
    """Train per `config` into `run_dir`; the final model (EMA weights) goes to run_dir/model.
    `resume` continues from the newest intact checkpoint there (`training.run_folder`); the
    main process holds the folder's lock throughout. `initial` fine-tunes a loaded model
    (`config.model` must be its config): all of it, or LoRA adapters with `config.lora.rank`,
    which go to run_dir/lora.safetensors instead of a model."""
    with run_lock(Path(run_dir), enabled=is_main_process()):
        return _train_diffusion(config, Path(run_dir), resume, show_progress, initial)


def _train_diffusion(
    config: DiffusionTrainConfig,
    run_dir: Path,
    resume: bool,
    show_progress: bool,
    initial: LatentDiffusion | None,
) -> TrainResult:
    run, run_dir = config.run, Path(run_dir)
    set_threads(run.threads)
    tune_allocator()
    device = select_device(run.device)
    precision = resolve_precision(run.precision, device)  # auto: bf16 if native
    context = init_distributed(device)
    if run.batch_size % (context.world * run.grad_accumulation):
        raise ValueError(
            f"run.batch_size {run.batch_size} must be divisible by world size {context.world} "
            f"x run.grad_accumulation {run.grad_accumulation}"
        )
    if initial is not None:
        first_stage = initial.autoencoder
    elif not config.autoencoder:
        raise ValueError(
            "set autoencoder= to the folder of a trained autoencoder (RUN/model), or to "
            "'pixels' for pixel-space diffusion"
        )
    else:
        first_stage = load_first_stage(config.autoencoder, config.model.unet.in_channels)
    if config.lora.rank and initial is None:
        raise ValueError("lora.rank adapts a trained model: fine-tune one (`ldmkit finetune`)")
    side = config.data.resolution // first_stage.factor
    if config.model.latent_size != side and initial is None:  # fine-tuning: any size
        raise ValueError(
            f"model.latent_size={config.model.latent_size}, but {config.data.resolution}px images "
            f"through this f={first_stage.factor} first stage give {side}x{side} latents; set "
            f"model.latent_size={side}"
        )
    levels = len(config.model.unet.channel_mult) - 1
    check_bucket_step(config.data, first_stage.factor * 2**levels, "this first stage and UNet")
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        start_run(run_dir, resume)
        save_yaml(config, run_dir / "config.yaml")
    barrier(context)
    start = resume_point(run_dir, resume, report=context.is_main)
    images = build_dataset(config.data, "train")
    seed_everything(run.seed)  # identical initial weights on every rank
    if initial is None:
        resumed = start.checkpoint is not None
        loaded = prepare_conditioners(config, run_dir, images, context, resumed)
        model = LatentDiffusion(config.model, first_stage, loaded)
    else:
        model = initial  # its conditioners keep their files (a tokenizer, CLIP)
        if context.is_main:
            for note in check_fine_tune_data(model, images, config.data):
                print(note, file=sys.stderr)
    adapters = Adapters(model, config.lora) if config.lora.rank else None
    model.to(device)
    ema = EMA(adapters if adapters is not None else model.unet, run.ema_decay).to(device)
    # tau_theta of text or layout models, trained with the UNet (LoRA: adapted, in `adapters`)
    encoder = model.context_encoder if adapters is None else None
    context_ema = EMA(encoder, run.ema_decay).to(device) if encoder is not None else None
    trained = list(adapters.parameters()) if adapters else model.trainable_parameters()
    optimizer = torch.optim.AdamW(
        trained,
        lr=config.optim.lr,
        betas=config.optim.betas,
        weight_decay=config.optim.weight_decay,
    )
    denoiser: torch.nn.Module = model.unet
    if context.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        denoiser = DistributedDataParallel(model.unet, device_ids=ids)
    modules: dict[str, torch.nn.Module] = {"unet": model.unet, "ema": ema}
    if adapters is not None:  # the base stays as loaded: checkpoints hold the adapters alone
        modules = {"adapters": adapters, "ema": ema}
    if encoder is not None and context_ema is not None:
        modules.update(context_encoder=encoder, context_ema=context_ema)
    optimizers = {"unet": optimizer}

    state = restore(start, config, ("model", "data", "lora", "init"), modules, optimizers, device)
    if context.is_main:
        streamed = config.data.stream and not run.cache_latents
        streams = (context.world, run.num_workers) if streamed else None
        record_data(run_dir, config.data, images, state.step, state.history, streams)

    reads_images = any(c.reads_images for c in model.conditioners)
    dataset: Dataset[dict[str, Any]] = images
    if run.cache_latents:  # the main process stores them; the others then read the store
        if context.is_main:
            dataset, said = stored_latents(
                model.autoencoder, images, config.data, reads_images, run.store_latents
            )
            if said:
                print(said, file=sys.stderr)
        barrier(context)
        if not context.is_main:
            dataset, _ = stored_latents(model.autoencoder, images, config.data, reads_images, False)
    local_batch = run.batch_size // context.world
    loader = train_loader(  # stored latents by index, shards' images as data.stream says
        dataset,
        config.data,
        run.batch_size,
        run.seed,
        state.step,
        run.steps,
        run.num_workers,
        context.rank,
        context.world,
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    # Snapshot grids: sample_count samples conditioned as each conditioner's `preview` of the
    # first training items says (at most 8 where it adds rows: a map's inputs and originals).
    # The conditions come from held-out items: the grid shows what the model makes of data
    # it has not trained on.
    limits = [c.max_preview for c in model.conditioners if c.max_preview is not None]
    heldout = build_dataset(config.data, "heldout", min([run.sample_count, *limits]))
    shown = min(run.sample_count, len(heldout), *limits)  # type: ignore[arg-type]
    first_items = [heldout[i] for i in range(shown)]
    previews = {
        c.input_name: c.preview(first_items, sample_generators(run.seed, -1, range(shown)), device)
        for c in model.conditioners
    }
    guidance = run.sample_guidance if model.default_guidance != 1.0 else 1.0

    def save(at_step: int) -> None:
        if not context.is_main:
            return

        def write(tmp: Path) -> None:
            info = state.as_info(at_step)
            save_train_state(tmp, modules, optimizers, rng_state(device), info)
            (tmp / "config.json").write_text(json.dumps(to_dict(config), indent=2))

        write_checkpoint(run_dir, at_step, write, run.keep_checkpoints)
        write_json(run_dir / "history.json", state.history)

    @contextlib.contextmanager
    def averaged_model() -> Iterator[LatentDiffusion]:
        """The model with the EMA weights, to sample from; training's weights untouched."""
        if adapters is not None:  # the averaged adapters swapped in, then back
            with adapters.averaged(ema):
                model.eval()
                try:
                    yield model
                finally:
                    model.train()
            return
        sampler_model = LatentDiffusion(config.model, model.autoencoder, model.loaded)
        sampler_model.to(device)
        sampler_model.unet.load_state_dict(ema.averaged_state(model.unet))
        if sampler_model.context_encoder is not None and encoder is not None and context_ema:
            sampler_model.context_encoder.load_state_dict(context_ema.averaged_state(encoder))
        yield sampler_model

    def snapshot(at_step: int) -> None:
        if not context.is_main:
            return
        options = SamplingOptions(run.sample_sampler, run.sample_steps, guidance)
        inputs = {name: preview.values for name, preview in previews.items()}
        with averaged_model() as sampler_model:
            samples = sampler_model.sample(shown, inputs=inputs, options=options)
        for conditioner in sampler_model.conditioners:
            samples = conditioner.annotate(samples, inputs[conditioner.input_name])
        above = [p.above for p in previews.values() if p.above is not None]
        below = [p.below for p in previews.values() if p.below is not None]
        rows = [*above, samples, *below]  # e.g. a map's inputs, the outputs, the originals
        (run_dir / "samples").mkdir(exist_ok=True)
        grid = image_grid(torch.cat(rows), nrow=shown if len(rows) > 1 else min(8, shown))
        grid.save(run_dir / "samples" / f"samples-{at_step:08d}.png")
        grid.save(run_dir / "samples.png")

    micro = local_batch // run.grad_accumulation

    def train_step(batch: dict[str, Any], step: int) -> dict[str, Any] | None:
        lr = config.optim.lr * lr_multiplier(
            step,
            run.steps,
            config.optim.warmup_steps,
            config.optim.schedule,
            config.optim.min_lr_ratio,
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for k in range(run.grad_accumulation):
            part = {key: value[k * micro : (k + 1) * micro] for key, value in batch.items()}
            sync = k == run.grad_accumulation - 1 or context.world == 1
            ctx = contextlib.nullcontext() if sync else denoiser.no_sync()  # type: ignore[operator]
            with ctx, autocast(device, precision):
                latents = part["latent"].to(device) if "latent" in part else None
                for key in ("image", "semantic"):
                    if key in part:
                        part[key] = part[key].to(device)
                first = context.rank * local_batch + k * micro
                generators = sample_generators(run.seed, step, range(first, first + micro))
                loss, _ = model.loss(part, generators, latents=latents, denoiser=denoiser)
                scaler.scale(loss / run.grad_accumulation).backward()
            total += loss.item() / run.grad_accumulation
        if encoder is not None:
            average_gradients(encoder, context)
        if adapters is not None and config.lora.text_encoder:  # outside the DDP wrapper
            average_gradients(adapters, context)
        if not all_ranks_finite(total, device, context):
            optimizer.zero_grad(set_to_none=True)
            return None
        if config.optim.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(trained, config.optim.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        ema.update(adapters if adapters is not None else model.unet)
        if context_ema is not None and encoder is not None:
            context_ema.update(encoder)
        return {"loss": total, "lr": lr}

    model.train()
    log = RunLog(state.history, run_dir / "tensorboard", run.tensorboard and context.is_main)
    enabled = show_progress and context.is_main
    budget = 60 * run.max_minutes - state.elapsed if run.max_minutes else None
    bar = TrainingProgress(run.steps, state.step, enabled=enabled, title="ldm", budget_s=budget)
    cadence = run.cadence(run.sample_every)
    with bar:
        run_steps(loader, state, cadence, train_step, snapshot, save, log, bar)

    step, elapsed = state.step, state.elapsed
    state.save_unless_saved(save)
    log.close()
    model_dir = run_dir / (LORA_FILE if adapters is not None else "model")  # every rank says it
    checksums = rank_checksums(model.unet, context)
    if context.is_main:
        snapshot(step)
        save_loss_curve(state.history, run_dir / "loss.png", ("loss", "lr"), log_keys=("loss",))
        extra: dict[str, Any] = {
            "training": {
                "steps": step,
                "elapsed_s": round(elapsed, 1),
                "precision": precision,
                "data": to_dict(config.data),
                "rank_checksums": checksums,
            }
        }
        names = data_class_names(config.data)  # a folder's sub-folders: rows are named by them
        if names and len(names) == model.num_classes:
            extra["training"]["class_names"] = list(names)
        if config.init:
            extra["training"]["fine_tuned_from"] = config.init
        if adapters is not None:
            alpha = config.lora.alpha or config.lora.rank
            about = {**extra["training"], "rank": config.lora.rank, "alpha": alpha}
            pairs = adapters.pairs(ema.averaged_state(adapters))
            save_lora(pairs, model_dir, about)
        else:
            context_state = (
                context_ema.averaged_state(encoder)
                if encoder is not None and context_ema is not None
                else None
            )
            unet_state = ema.averaged_state(model.unet)
            save_latent_diffusion(model, model_dir, unet_state, extra, context_state)
    # The DDP wrapper (its reducer holds the process group) goes while every rank still holds
    # the group: freed only after `shutdown`, on return, it could wait for a peer that had
    # already exited (a rare hang of the two-rank tests).
    denoiser = model.unet
    gc.collect()
    barrier(context)
    shutdown(context)
    return TrainResult(model_dir, step, elapsed, state.history)
