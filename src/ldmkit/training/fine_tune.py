"""Fine-tuning a loaded model: its training data must carry what its conditioners read, in
words its tokenizer knows."""

from typing import Any

from ldmkit.conditioning.prompt import PromptConditioner, captions
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import data_class_names
from ldmkit.pipeline import LatentDiffusion
from ldmkit.training.config import DiffusionRunConfig, DiffusionTrainConfig, OptimConfig
from ldmkit.training.lora_settings import LoraSettings

SHOWN = 5  # problems named in a note; the rest counted


def check_fine_tune_data(model: LatentDiffusion, data: Any, config: DataConfig) -> list[str]:
    """Notes on `data` (the training items, read per `config`) for fine-tuning `model`: a
    prompt model's captions that its tokenizer cuts or does not know words of (they train as
    unknown tokens). Data without the captions a prompt model needs, or with other classes than
    a class model's, is a ValueError."""
    classes = model.num_classes
    if classes and config.kind in ("folder", "shards"):  # the built-in sets: their own labels
        names = data_class_names(config)
        if len(names) != classes:
            found = f"{len(names)} class sub-folders" if names else "no class sub-folders"
            raise ValueError(
                f"the model draws {classes} classes; the {config.kind} data has {found}: "
                f"fine-tune a class model on a folder with one sub-folder per class, in its order"
            )
    prompts = model.conditioner("prompts")
    if not isinstance(prompts, PromptConditioner):
        return []
    distinct = sorted(set(captions(data, config.kind)) - {""})
    problems = prompts.problems(distinct)
    if not problems:
        return []
    shown = "; ".join(problems[:SHOWN])
    more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
    return [
        f"note: {len(problems)} of {len(distinct)} distinct training captions are not read as "
        f"written by the model's tokenizer, which fine-tuning keeps: {shown}{more}"
    ]


def fine_tune_config(
    model: LatentDiffusion, init: str, rank: int = 0, text_encoder: bool = False
) -> DiffusionTrainConfig:
    """A fine-tuning run of `model` (loaded from `init`): its own config and image size, AdamW
    (1e-4 for every weight, 1e-3 for LoRA adapters: at 1e-4 a rank-8 LoRA of the shipped model
    still drew the old style's colours in half its samples after 1000 steps, at 1e-3 in 3%;
    docs/results/own_data.md),
    1000 steps of batch 8 with EMA, a snapshot and checkpoint every 250 steps; LoRA adapters of
    `rank` (0: every weight) on the UNet's attention, and on the text encoder with
    `text_encoder`. `--set` then changes any of it but the model."""
    side = model.config.latent_size * model.autoencoder.factor
    return DiffusionTrainConfig(
        init=init,
        autoencoder=init,
        model=model.config,
        data=DataConfig(resolution=side),
        optim=OptimConfig(lr=1e-3 if rank else 1e-4, betas=(0.9, 0.999), warmup_steps=50),
        run=DiffusionRunConfig(
            steps=1000,
            batch_size=8,
            sample_every=250,
            checkpoint_every=250,
            sample_count=8,
            ema_decay=0.995,
        ),
        lora=LoraSettings(rank=rank, text_encoder=text_encoder),
    )
