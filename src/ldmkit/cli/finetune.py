"""`ldmkit finetune MODEL --data DIR`: fine-tune any model ldmkit loads, whole or with LoRA
adapters, written in ldmkit's, diffusers' and kohya's names."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ldmkit.cli.common import (
    DataOption,
    Ema,
    OriginalConfig,
    Overrides,
    Prediction,
    app,
    fail,
    with_data,
)
from ldmkit.config import ConfigError, apply_overrides, from_dict, to_dict

if TYPE_CHECKING:
    from ldmkit.pipeline import LatentDiffusion

# The LoRA files a run writes beside its own `lora.safetensors`: diffusers' default weight name
# (`pipe.load_lora_weights(RUN)` finds it) and kohya's names (the web UIs' LoRA folder).
EXPORTS = {"diffusers": "pytorch_lora_weights.safetensors", "kohya": "lora_kohya.safetensors"}


@app.command("finetune")
def finetune_command(
    model: Annotated[
        Path,
        typer.Argument(
            help="The model to start from: ldmkit's folder (RUN/model), a diffusers folder, "
            "an SD single file"
        ),
    ],
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, samples, the LoRA or model/")],
    data: DataOption = None,
    lora_rank: Annotated[
        int,
        typer.Option(
            help="Train rank-R LoRA adapters on the UNet's attention; 0 tunes all weights"
        ),
    ] = 0,
    lora_text_encoder: Annotated[
        bool, typer.Option(help="LoRA: also adapt the text encoder")
    ] = False,
    overrides: Overrides = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run's latest checkpoint")] = True,
    ema: Ema = False,
    prediction: Prediction = None,
    config: OriginalConfig = None,
) -> None:
    """Fine-tune a trained model on new images (default data: shapes); the model's config and
    image size stay, `--set` changes the run (run.steps, optim.lr, lora.alpha, ...)."""
    from ldmkit.checkpoint import CheckpointError
    from ldmkit.interop.load import load
    from ldmkit.nn.lora import LoraError
    from ldmkit.training.config import DiffusionTrainConfig
    from ldmkit.training.diffusion_trainer import train_diffusion
    from ldmkit.training.distributed import is_main_process
    from ldmkit.training.fine_tune import fine_tune_config
    from ldmkit.training.loop import TrainingDiverged

    if lora_rank < 0:
        raise fail(f"--lora-rank {lora_rank}: give a rank >= 1, or 0 to tune every weight")
    if lora_text_encoder and not lora_rank:
        raise fail("--lora-text-encoder needs --lora-rank R (R >= 1)")
    try:
        base = load(model, "cpu", ema=ema, prediction=prediction, original_config=config)
        preset = fine_tune_config(base, str(model), lora_rank, lora_text_encoder)
        values = with_data(to_dict(preset), data)
        cfg = from_dict(DiffusionTrainConfig, apply_overrides(values, overrides or []))
        if cfg.model != base.config:
            raise fail("fine-tuning keeps the model's own config: drop the --set model.* options")
        result = train_diffusion(cfg, out, resume=resume, initial=base)
        files = {"lora" if lora_rank else "model": str(result.model_dir)}
        if lora_rank and is_main_process():  # under torchrun, one process writes them
            files.update(_export_lora(base, result.model_dir))
    except (ConfigError, CheckpointError, LoraError, ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from error
    except TrainingDiverged as error:  # not a ValueError
        raise fail(str(error)) from error
    typer.echo(json.dumps({**files, "steps": result.step, "minutes": result.elapsed_s / 60}))


def _export_lora(model: "LatentDiffusion", trained: Path) -> dict[str, str]:
    """The run's LoRA also in diffusers' and kohya's names, beside it."""
    from ldmkit.interop.lora import read_lora, write_lora

    pairs, _ = read_lora(trained)
    return {
        fmt: str(write_lora(model, pairs, trained.with_name(name), fmt))
        for fmt, name in EXPORTS.items()
    }
