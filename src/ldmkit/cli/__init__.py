"""The `ldmkit` command line: a thin skin over the library."""

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from ldmkit.cli.common import DataOption, Overrides, app, checked, fail, with_data
from ldmkit.config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict
from ldmkit.inputs import check_count, check_writable_folder


def _config_data(
    preset: str | None, config: Path | None, presets: dict[str, Any], default: str
) -> dict[str, Any]:
    """Plain config data from a YAML file or a named preset (never both)."""
    if preset and config:
        raise fail("give --preset or --config, not both")
    if config:
        return load_yaml(config)
    name = preset or default
    if name not in presets:
        raise fail(f"unknown preset {name!r}; presets: {', '.join(presets)}")
    return to_dict(presets[name])


def autoencoder_config(
    preset: str | None, config: Path | None, overrides: list[str], data: str | None = None
):
    """Resolve --preset / --config / --data / --set into an AutoencoderTrainConfig."""
    from ldmkit.training.config import AutoencoderTrainConfig
    from ldmkit.training.presets import PRESETS

    values = with_data(_config_data(preset, config, PRESETS, "kl-f4"), data)
    return from_dict(AutoencoderTrainConfig, apply_overrides(values, overrides))


@app.command("train-autoencoder")
def train_autoencoder_command(
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, pictures, model/")],
    preset: Annotated[str | None, typer.Option(help="Named preset (see `ldmkit presets`)")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config file")] = None,
    data: DataOption = None,
    overrides: Overrides = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run's latest checkpoint")] = True,
) -> None:
    """Train a KL- or VQ-regularised autoencoder (the first stage)."""
    from ldmkit.training.autoencoder_trainer import train_autoencoder
    from ldmkit.training.loop import TrainingDiverged

    try:
        cfg = autoencoder_config(preset, config, overrides or [], data)
    except ConfigError as error:
        raise fail(str(error)) from error
    try:
        result = train_autoencoder(cfg, out, resume=resume)
    except (ValueError, FileNotFoundError, TrainingDiverged) as error:
        raise fail(str(error)) from error
    typer.echo(
        json.dumps(
            {"model": str(result.model_dir), "steps": result.step, "minutes": result.elapsed_s / 60}
        )
    )


def diffusion_config(
    preset: str | None,
    config: Path | None,
    autoencoder: Path | None,
    overrides: list[str],
    data: str | None = None,
):
    """Resolve --preset / --config / --autoencoder / --data / --set into a
    DiffusionTrainConfig; a class model on a folder gets the folder's classes."""
    from ldmkit.training.config import DiffusionTrainConfig
    from ldmkit.training.data_fit import fit_classes_to_folder
    from ldmkit.training.diffusion_presets import DIFFUSION_PRESETS

    values = with_data(_config_data(preset, config, DIFFUSION_PRESETS, "shapes-class"), data)
    if autoencoder is not None:
        values["autoencoder"] = str(autoencoder)
    resolved, note = fit_classes_to_folder(
        from_dict(DiffusionTrainConfig, apply_overrides(values, overrides))
    )
    if note:
        typer.echo(note, err=True)
    return resolved


@app.command("train")
def train_command(
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, samples, model/")],
    autoencoder: Annotated[
        Path | None,
        typer.Option(help="Trained autoencoder (RUN/model), or 'pixels' for pixel space (f=1)"),
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help="Named LDM preset (see `ldmkit presets`)")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config file")] = None,
    data: DataOption = None,
    overrides: Overrides = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run's latest checkpoint")] = True,
) -> None:
    """Train a latent diffusion model on a trained autoencoder's latents (torchrun for DDP)."""
    from ldmkit.checkpoint import CheckpointError
    from ldmkit.training.diffusion_trainer import train_diffusion
    from ldmkit.training.loop import TrainingDiverged

    try:
        cfg = diffusion_config(preset, config, autoencoder, overrides or [], data)
        result = train_diffusion(cfg, out, resume=resume)
    except (ConfigError, CheckpointError, ValueError, FileNotFoundError, TrainingDiverged) as error:
        raise fail(str(error)) from error
    typer.echo(
        json.dumps(
            {"model": str(result.model_dir), "steps": result.step, "minutes": result.elapsed_s / 60}
        )
    )


@app.command("presets")
def presets_command(
    name: Annotated[str | None, typer.Argument(help="Print this preset as YAML")] = None,
) -> None:
    """List the named presets, or print one as YAML (a starting point for --config)."""
    from ldmkit.training.diffusion_presets import DIFFUSION_PRESETS
    from ldmkit.training.presets import PRESETS

    if name is None:
        typer.echo("autoencoders (ldmkit train-autoencoder --preset NAME):")
        for key, value in PRESETS.items():
            m = value.model
            typer.echo(
                f"  {key:18s} {m.kind} f={m.factor} model_channels={m.model_channels} "
                f"channel_mult={list(m.channel_mult)}"
            )
        typer.echo("latent diffusion (ldmkit train --preset NAME):")
        for key, ldm in DIFFUSION_PRESETS.items():
            u = ldm.model.unet
            typer.echo(
                f"  {key:18s} unet model_channels={u.model_channels} "
                f"channel_mult={list(u.channel_mult)}"
            )
        return
    both = {**PRESETS, **DIFFUSION_PRESETS}
    if name not in both:
        raise fail(f"unknown preset {name!r}; presets: {', '.join(both)}")
    typer.echo(yaml.safe_dump(to_dict(both[name]), sort_keys=False))


@app.command("info")
def info_command() -> None:
    """This machine as ldmkit sees it (JSON): torch, the CPU's instruction sets, CUDA devices,
    and per device which half precisions run natively and what `--precision auto` picks."""
    import torch

    from ldmkit.hardware import machine_report
    from ldmkit.precision import native_precision, resolve_precision

    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    report = machine_report()
    report["precision"] = {
        device.type: {
            "native": {name: native_precision(device, name) for name in ("bf16", "fp16")},
            "auto": resolve_precision("auto", device),
        }
        for device in devices
    }
    typer.echo(json.dumps(report, indent=2))


@app.command("train-evaluator")
def train_evaluator_command(
    out: Annotated[Path, typer.Option(help="Folder for the evaluator checkpoint")],
    steps: Annotated[int, typer.Option(help="Training steps at batch 64")] = 1200,
    data: Annotated[
        str,
        typer.Option(
            help="shapes (kind x colour), fashion-mnist, or an image folder with one sub-folder "
            "per class (its held-out split scores the evaluator)"
        ),
    ] = "shapes",
    resolution: Annotated[int, typer.Option(help="Input size; match the LDM's images")] = 64,
    seed: int = 0,
) -> None:
    """Train an adherence evaluator on ground truth; prints held-out accuracy."""
    checked(
        lambda: check_count("--steps", steps),
        lambda: check_count("--resolution", resolution, minimum=16),
        lambda: check_writable_folder("--out", out.parent),
    )
    from ldmkit.metrics.class_evaluator import EvaluatorConfig
    from ldmkit.training.evaluator_trainer import label_space, train_evaluator

    try:
        kinds, colors = label_space(data)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--data") from error
    try:
        config = EvaluatorConfig(num_kinds=kinds, num_colors=colors, resolution=resolution)
        result = train_evaluator(out, steps=steps, seed=seed, config=config, data=data)
    except ValueError as error:
        raise fail(f"--resolution {resolution} / --data {data}: {error}") from error
    typer.echo(json.dumps(result))


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("runs/demo"),
    train: Annotated[
        bool, typer.Option(help="Retrain the text-to-image model's recorded recipe first (~26 min)")
    ] = False,
    prompt: Annotated[
        list[str] | None, typer.Option(help="Prompts to sample (default: six shapes prompts)")
    ] = None,
    per_prompt: Annotated[int, typer.Option(help="Samples per prompt")] = 4,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Text-to-image checkpoint (default: the shipped shapes model)"),
    ] = None,
    classes: Annotated[
        bool,
        typer.Option(
            "--classes",
            help="Instead: train a class-conditional LDM from scratch and score it (~9 min)",
        ),
    ] = False,
    train_autoencoder: Annotated[
        bool, typer.Option(help="--classes: also train the kl-f4 first stage (~10 min more)")
    ] = False,
    diffusion_steps: Annotated[int, typer.Option(help="--classes: LDM training steps")] = 700,
    per_class: Annotated[int, typer.Option(help="--classes: samples per class")] = 5,
    seed: int = 0,
) -> None:
    """Text-to-image on shapes from the shipped checkpoint in under a minute: samples per prompt,
    the one-object prompts' adherence, OUT/report.md. --train retrains the checkpoint's recorded
    recipe from scratch first. --classes: the class-conditional pipeline end to end instead (an
    LDM trained on the shipped kl-f4 autoencoder, one row of samples per class, adherence)."""
    from ldmkit.assets import SHAPES_TEXT_TO_IMAGE
    from ldmkit.demo import DemoConfig, TextDemoConfig, run_demo, run_text_demo

    if classes:
        if train or prompt or checkpoint is not None:
            raise fail("--classes trains its own model: drop --train, --prompt and --checkpoint")
        config = DemoConfig(
            train_autoencoder=train_autoencoder,
            diffusion_steps=diffusion_steps,
            per_class=per_class,
            seed=seed,
        )
        report = run_demo(out, config)
    else:
        if per_prompt < 1:
            raise fail("--per-prompt must be >= 1")
        text = TextDemoConfig(per_prompt=per_prompt, seed=seed, train=train)
        if prompt:
            text = dataclasses.replace(text, prompts=tuple(prompt))
        source = checkpoint if checkpoint is not None else SHAPES_TEXT_TO_IMAGE
        report = run_text_demo(out, text, checkpoint=source)
    typer.echo(json.dumps(report, indent=2))


# These modules' subcommands register themselves on `app` / `eval_app` when imported.
from ldmkit.cli import data as _data  # noqa: E402, F401
from ldmkit.cli import evaluate as _evaluate  # noqa: E402, F401
from ldmkit.cli import export as _export  # noqa: E402, F401
from ldmkit.cli import finetune as _finetune  # noqa: E402, F401
from ldmkit.cli import inspect_image as _inspect_image  # noqa: E402, F401
from ldmkit.cli import restore as _restore  # noqa: E402, F401
from ldmkit.cli import sample as _sample  # noqa: E402, F401
from ldmkit.cli import serve as _serve  # noqa: E402, F401


def main() -> None:
    """Entry point of the `ldmkit` console script; warnings print as one `warning:` line."""
    import warnings

    warnings.formatwarning = _one_line  # type: ignore[assignment]
    app()


def _one_line(message: Warning | str, category: type[Warning], *args: object) -> str:
    return f"warning: {message}\n"


if __name__ == "__main__":
    main()
