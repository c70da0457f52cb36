"""Configuration of a training run: optimiser, loop settings, and the autoencoder experiment."""

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from ldmkit.autoencoder import AutoencoderConfig, AutoencoderLossConfig
from ldmkit.data.config import DataConfig
from ldmkit.pipeline import DiffusionConfig
from ldmkit.precision import Precision
from ldmkit.samplers import SAMPLERS
from ldmkit.training.loop import Cadence
from ldmkit.training.lora_settings import LoraSettings


@dataclass(frozen=True)
class OptimConfig:
    """Adam(W) settings with linear warm-up and optional gradient clipping."""

    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine"] = "constant"  # after warm-up, over run.steps
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio
    grad_clip: float = 0.0  # max global norm; 0 disables clipping
    disc_lr: float = 0.0  # discriminator learning rate; 0 means the same as lr

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0; got {self.lr}")
        if not all(0.0 <= beta < 1.0 for beta in self.betas):
            raise ValueError(f"betas must each be in [0, 1); got {list(self.betas)}")
        for name in ("weight_decay", "grad_clip", "disc_lr"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {value}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0; got {self.warmup_steps}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1]; got {self.min_lr_ratio}")


@dataclass(frozen=True)
class LoopConfig:
    """What every training loop shares: length, batch, precision, logging, checkpoints."""

    steps: int = 2000
    batch_size: int = 64  # diffusion: global batch, split across ranks, then accumulation steps
    seed: int = 0
    max_minutes: float = 0.0  # stop (and save) after this wall-clock budget; 0 = no limit
    precision: Precision = "fp32"
    device: str = "auto"
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    num_workers: int = 0
    log_every: int = 25
    tensorboard: bool = False  # also write the logged scalars to RUN/tensorboard
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    max_bad_steps: int = 10  # consecutive non-finite losses before the run stops

    # (field, smallest value): the counts a run cannot work without.
    _AT_LEAST = (
        ("steps", 1),
        ("batch_size", 1),
        ("seed", 0),
        ("threads", 0),
        ("num_workers", 0),
        ("log_every", 1),
        ("checkpoint_every", 0),
        ("keep_checkpoints", 1),
        ("max_bad_steps", 1),
    )

    def __post_init__(self) -> None:
        for name, minimum in self._AT_LEAST:
            value = getattr(self, name)
            if value < minimum:
                raise ValueError(f"{name} must be >= {minimum}; got {value}")
        if not math.isfinite(self.max_minutes) or self.max_minutes < 0:
            raise ValueError(
                f"max_minutes must be a finite number >= 0 (0 = no limit); got {self.max_minutes}"
            )

    def cadence(self, snapshot_every: int) -> Cadence:
        """When the loop logs, snapshots (every `snapshot_every` steps) and saves."""
        return Cadence(
            self.steps,
            self.log_every,
            snapshot_every,
            self.checkpoint_every,
            self.max_bad_steps,
            self.max_minutes,
        )


@dataclass(frozen=True)
class RunConfig(LoopConfig):
    """Loop settings of an autoencoder run."""

    image_every: int = 500  # reconstruction grid and held-out PSNR
    sample_posterior: bool = True
    dead_code_restart_every: int = 200  # VQ only; 0 disables restarts
    heldout_images: int = 16  # images in the reconstruction grid
    latent_stat_batches: int = 8  # batches used to measure the latent scale

    _AT_LEAST = (
        *LoopConfig._AT_LEAST,
        ("image_every", 0),
        ("dead_code_restart_every", 0),
        ("heldout_images", 1),
        ("latent_stat_batches", 1),
    )


@dataclass(frozen=True)
class AutoencoderTrainConfig:
    """Everything that defines an autoencoder training run."""

    model: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    loss: AutoencoderLossConfig = field(default_factory=AutoencoderLossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


@dataclass(frozen=True)
class DiffusionRunConfig(LoopConfig):
    """Loop settings of a latent-diffusion run."""

    steps: int = 5000
    grad_accumulation: int = 1
    sample_every: int = 500
    ema_decay: float = 0.999
    cache_latents: bool = True  # encode the data once with the frozen first stage
    # ... and keep those latents on disk for later runs (`training/latent_store.py`).
    store_latents: bool = True
    sample_count: int = 16
    sample_steps: int = 50
    sample_guidance: float = 3.0
    sample_sampler: str = "ddim"

    _AT_LEAST = (
        *LoopConfig._AT_LEAST,
        ("grad_accumulation", 1),
        ("sample_every", 0),
        ("sample_count", 1),
        ("sample_steps", 1),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sample_sampler not in SAMPLERS:
            raise ValueError(
                f"sample_sampler must be one of {', '.join(SAMPLERS)}; got {self.sample_sampler!r}"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1); got {self.ema_decay}")
        if not (math.isfinite(self.sample_guidance) and self.sample_guidance >= 0):
            raise ValueError(
                f"sample_guidance must be a finite number >= 0; got {self.sample_guidance}"
            )


@dataclass(frozen=True)
class DiffusionTrainConfig:
    """Everything that defines a latent-diffusion training run."""

    autoencoder: str = ""  # folder of a trained autoencoder (RUN/model)
    # The model a fine-tuning run starts from (any model `ldmkit` loads); "" trains from scratch.
    init: str = ""
    model: DiffusionConfig = field(default_factory=DiffusionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, betas=(0.9, 0.999)))
    run: DiffusionRunConfig = field(default_factory=DiffusionRunConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)  # fine-tuning: adapters or all

    @classmethod
    def upgrade_config(cls, data: dict[str, Any]) -> dict[str, Any]:
        """An older run's `text_tokenizer` as its text conditioner's `tokenizer`."""
        if "text_tokenizer" not in data:
            return data
        data = dict(data)
        path = data.pop("text_tokenizer")
        if path:
            model = DiffusionConfig.upgrade_config(dict(data.get("model", {})))
            entries = [dict(entry) for entry in model.get("conditioners", [])]
            text = [entry for entry in entries if entry.get("kind") == "text"]
            if not text:
                raise ValueError("text_tokenizer is set, but the model has no text conditioner")
            text[0]["tokenizer"] = path
            data["model"] = {**model, "conditioners": entries}
        return data
