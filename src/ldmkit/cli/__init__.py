"""The `ldmkit` command line: a thin skin over the library."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from ldmkit.cli.common import Overrides, app, data_app, fail
from ldmkit.config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict


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


def autoencoder_config(preset: str | None, config: Path | None, overrides: list[str]):
    """Resolve --preset / --config / --set into an AutoencoderTrainConfig."""
    from ldmkit.training.config import AutoencoderTrainConfig
    from ldmkit.training.presets import PRESETS

    data = _config_data(preset, config, PRESETS, "kl-f4")
    return from_dict(AutoencoderTrainConfig, apply_overrides(data, overrides))


@app.command("train-autoencoder")
def train_autoencoder_command(
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, pictures, model/")],
    preset: Annotated[str | None, typer.Option(help="Named preset (see `ldmkit presets`)")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config file")] = None,
    overrides: Overrides = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run's latest checkpoint")] = True,
) -> None:
    """Train a KL- or VQ-regularised autoencoder (the first stage)."""
    from ldmkit.training.autoencoder_trainer import TrainingDiverged, train_autoencoder

    try:
        cfg = autoencoder_config(preset, config, overrides or [])
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
    preset: str | None, config: Path | None, autoencoder: Path | None, overrides: list[str]
):
    """Resolve --preset / --config / --autoencoder / --set into a DiffusionTrainConfig."""
    from ldmkit.training.config import DiffusionTrainConfig
    from ldmkit.training.diffusion_presets import DIFFUSION_PRESETS

    data = _config_data(preset, config, DIFFUSION_PRESETS, "shapes-class")
    if autoencoder is not None:
        data["autoencoder"] = str(autoencoder)
    return from_dict(DiffusionTrainConfig, apply_overrides(data, overrides))


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
    overrides: Overrides = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run's latest checkpoint")] = True,
) -> None:
    """Train a latent diffusion model on a trained autoencoder's latents (torchrun for DDP)."""
    from ldmkit.checkpoint import CheckpointError
    from ldmkit.training.autoencoder_trainer import TrainingDiverged
    from ldmkit.training.diffusion_trainer import train_diffusion

    try:
        cfg = diffusion_config(preset, config, autoencoder, overrides or [])
        result = train_diffusion(cfg, out, resume=resume)
    except (ConfigError, CheckpointError, ValueError, FileNotFoundError, TrainingDiverged) as error:
        raise fail(str(error)) from error
    typer.echo(
        json.dumps(
            {"model": str(result.model_dir), "steps": result.step, "minutes": result.elapsed_s / 60}
        )
    )


@app.command("sample")
def sample_command(
    checkpoint: Annotated[Path, typer.Option(help="Latent diffusion folder (RUN/model)")],
    out: Annotated[Path, typer.Option(help="Grid PNG to write")] = Path("samples.png"),
    n: int = 16,
    sampler: Annotated[str, typer.Option(help="ddpm, ddim, plms or dpm++2m")] = "ddim",
    steps: int = 50,
    guidance: Annotated[
        float | None,
        typer.Option(help="Classifier-free guidance (default 3; 1 for spatial-only models)"),
    ] = None,
    class_: Annotated[
        int | None, typer.Option("--class", help="Class id for every sample (default: cycle)")
    ] = None,
    seed: int = 0,
    singles: Annotated[bool, typer.Option(help="Also write each image as a PNG")] = False,
    per_class: Annotated[
        int | None,
        typer.Option(help="K samples of every class, one labelled row per class (sets --n)"),
    ] = None,
    prompt: Annotated[
        list[str] | None, typer.Option(help="Text models: a prompt (repeat for several)")
    ] = None,
    prompts: Annotated[
        Path | None, typer.Option(help="Text models: a file of prompts, one per line")
    ] = None,
    per_prompt: Annotated[
        int | None,
        typer.Option(help="K samples of every prompt, one labelled row per prompt (sets --n)"),
    ] = None,
    latent_size: Annotated[
        int | None,
        typer.Option(help="Latent side (default: the training side; larger samples bigger images)"),
    ] = None,
    tile: Annotated[
        int | None,
        typer.Option(
            help="Denoise and decode in blended latent tiles of this side (bounded memory)"
        ),
    ] = None,
    semantic: Annotated[
        Path | None,
        typer.Option(help="Semantic models: a map PNG whose grey values are class ids (0 = none)"),
    ] = None,
    init_image: Annotated[
        Path | None,
        typer.Option(help="Image-to-image: start from this image noised to --strength"),
    ] = None,
    strength: Annotated[
        float, typer.Option(help="Image-to-image: 1 = from noise, small = close to the image")
    ] = 0.75,
    device: str = "auto",
) -> None:
    """Generate a grid of samples; the PNG's text metadata records how to reproduce it."""
    import torch
    from PIL.PngImagePlugin import PngInfo

    from ldmkit.checkpoint import CheckpointError, load_latent_diffusion, training_data
    from ldmkit.data.factory import class_names
    from ldmkit.training.runtime import select_device
    from ldmkit.training.visuals import image_grid, labelled_grid, to_uint8

    try:
        model = load_latent_diffusion(checkpoint, select_device(device))
    except CheckpointError as error:
        raise fail(str(error)) from error
    labels = None
    classes = model.config.num_classes
    if guidance is None:
        spatial_only = model.config.spatial is not None and not classes and not model.text_encoder
        guidance = 1.0 if spatial_only and not model.config.spatial_dropout else 3.0
    if per_class is not None:
        if not classes or class_ is not None or per_class < 1:
            raise fail("--per-class K (K >= 1) needs a class-conditional model and no --class")
        n = per_class * classes
    if classes:
        if class_ is not None and not 0 <= class_ < classes:
            raise fail(f"--class must be in 0..{classes - 1}")
        if class_ is not None:
            labels = torch.full((n,), class_)
        elif per_class:
            labels = torch.arange(classes).repeat_interleave(per_class)
        else:
            labels = torch.arange(n) % classes
    try:
        texts = _prompts(prompt, prompts)
    except (OSError, UnicodeDecodeError) as error:
        raise fail(f"cannot read --prompts {prompts}: {error}") from error
    is_text = model.text_encoder is not None
    if is_text != bool(texts):
        raise fail(
            "this model is text-conditional: pass --prompt TEXT or --prompts FILE"
            if is_text
            else "--prompt/--prompts need a text-conditional model"
        )
    if per_prompt is not None:
        if not texts or per_prompt < 1:
            raise fail("--per-prompt K (K >= 1) needs prompts")
        n = per_prompt * len(texts)
        texts = [t for t in texts for _ in range(per_prompt)]
    elif texts:
        texts = [texts[i % len(texts)] for i in range(n)]
    condition = None
    if semantic is not None:
        condition = _semantic_condition(model, semantic, n)
    init_images = None
    if init_image is not None:
        from ldmkit.data.image_folder import ImageLoadError, image_to_tensor, load_image

        try:
            init_images = image_to_tensor(load_image(init_image))[None].expand(n, -1, -1, -1)
        except ImageLoadError as error:
            raise fail(str(error)) from error
    try:
        images = model.sample(
            n,
            labels,
            guidance,
            sampler,
            steps,
            seed,
            latent_size,
            show_progress=True,
            prompts=texts or None,
            tile=tile,
            init_images=init_images,
            strength=strength,
            condition=condition,
        )
    except ValueError as error:
        raise fail(str(error)) from error
    params = {
        "checkpoint": str(checkpoint),
        "n": n,
        "sampler": sampler,
        "steps": steps,
        "guidance": guidance,
        "class": class_,
        "per_class": per_class,
        "seed": seed,
        "latent_size": latent_size,
        "tile": tile,
    }
    if init_image is not None:
        params.update(init_image=str(init_image), strength=strength)
    if semantic is not None:
        params.update(semantic=str(semantic))
    if texts:
        params.update(prompts=texts, per_prompt=per_prompt)
    info = PngInfo()
    info.add_text("ldmkit", json.dumps(params))
    out.parent.mkdir(parents=True, exist_ok=True)
    if per_class:
        try:
            kind = training_data(checkpoint).kind
        except CheckpointError:
            kind = ""  # unnamed classes
        names = class_names(kind, classes)
        grid = labelled_grid(images, per_class, names)
    elif per_prompt:
        grid = labelled_grid(images, per_prompt, texts[::per_prompt])
    else:
        grid = image_grid(images, nrow=min(n, 8))
    grid.save(out, pnginfo=info)
    if singles:
        from PIL import Image

        for i, array in enumerate(to_uint8(images)):
            label = int(labels[i]) if labels is not None else None
            single = {**params, "index": i, "seed": seed + i, "n": 1, "class": label}
            if texts:
                single.update(prompts=[texts[i]], per_prompt=None)
            meta = PngInfo()
            meta.add_text("ldmkit", json.dumps(single))
            Image.fromarray(array).save(out.with_name(f"{out.stem}-{i:03d}.png"), pnginfo=meta)
    typer.echo(json.dumps({"out": str(out), **params}))


def _semantic_condition(model: Any, path: Path, n: int) -> Any:
    """The spatial condition of a label-map PNG (grey value = class id), repeated n times."""
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    spatial = model.config.spatial
    if spatial is None or spatial.kind != "semantic":
        raise fail("--semantic needs a semantic synthesis model")
    try:
        with Image.open(path) as opened:
            ids = torch.from_numpy(np.asarray(opened.convert("L"), dtype=np.int64))
    except (OSError, UnidentifiedImageError) as error:
        raise fail(f"cannot read the map {path}: {error}") from error
    try:
        return model.spatial_condition(semantic=ids[None]).expand(n, -1, -1, -1)
    except ValueError as error:
        raise fail(f"{path}: {error}") from error


def _prompts(given: list[str] | None, path: Path | None) -> list[str]:
    """--prompt values, then the non-empty lines of the --prompts file."""
    texts = list(given or [])
    if path is not None:
        texts += [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return texts


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
            typer.echo(f"  {key:18s} {m.kind} f={m.factor} ch={m.ch} ch_mult={list(m.ch_mult)}")
        typer.echo("latent diffusion (ldmkit train --preset NAME):")
        for key, ldm in DIFFUSION_PRESETS.items():
            u = ldm.model.unet
            typer.echo(f"  {key:18s} unet ch={u.model_channels} mult={list(u.channel_mult)}")
        return
    both = {**PRESETS, **DIFFUSION_PRESETS}
    if name not in both:
        raise fail(f"unknown preset {name!r}; presets: {', '.join(both)}")
    typer.echo(yaml.safe_dump(to_dict(both[name]), sort_keys=False))


@app.command("train-evaluator")
def train_evaluator_command(
    out: Annotated[Path, typer.Option(help="Folder for the evaluator checkpoint")],
    steps: Annotated[int, typer.Option(help="Training steps at batch 64")] = 1200,
    data: Annotated[str, typer.Option(help="shapes (kind x colour) or fashion-mnist")] = "shapes",
    resolution: Annotated[int, typer.Option(help="Input size; match the LDM's images")] = 64,
    seed: int = 0,
) -> None:
    """Train an adherence evaluator on ground truth; prints held-out accuracy."""
    from ldmkit.metrics.class_evaluator import EvaluatorConfig
    from ldmkit.training.evaluator_trainer import label_space, train_evaluator

    try:
        kinds, colors = label_space(data)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--data") from error
    config = EvaluatorConfig(num_kinds=kinds, num_colors=colors, resolution=resolution)
    result = train_evaluator(out, steps=steps, seed=seed, config=config, data=data)
    typer.echo(json.dumps(result))


@data_app.command("prepare")
def data_prepare_command(
    name: Annotated[str, typer.Argument(help="fashion-mnist or emoji")],
    out: Annotated[Path | None, typer.Option(help="Default: data/NAME")] = None,
) -> None:
    """Prepare a real dataset from its offline Debian package into data/NAME."""
    from ldmkit.data.prepare import DATASETS, prepare_dataset

    if name not in DATASETS:
        raise fail(f"unknown dataset {name!r}; datasets: {', '.join(DATASETS)}")
    try:
        path = prepare_dataset(name, out or Path("data") / name)
    except (FileNotFoundError, ValueError) as error:
        raise fail(str(error)) from error
    typer.echo(str(path))


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("runs/demo"),
    train_autoencoder: Annotated[
        bool,
        typer.Option(help="Also train the kl-f4 first stage (~10 min more); default: shipped"),
    ] = False,
    diffusion_steps: Annotated[int, typer.Option(help="LDM training steps (batch 64)")] = 700,
    per_class: Annotated[int, typer.Option(help="Samples per class in grid and score")] = 5,
    seed: int = 0,
) -> None:
    """Latent diffusion end to end on shapes (~9 min on 2 cores): a class-conditional LDM on the
    shipped kl-f4 autoencoder, one row of samples per class, adherence; OUT/report.md."""
    from ldmkit.demo import DemoConfig, run_demo

    config = DemoConfig(
        train_autoencoder=train_autoencoder,
        diffusion_steps=diffusion_steps,
        per_class=per_class,
        seed=seed,
    )
    report = run_demo(out, config)
    typer.echo(json.dumps(report, indent=2))


# These modules' subcommands register themselves on `app` / `eval_app` when imported.
from ldmkit.cli import evaluate as _evaluate  # noqa: E402, F401
from ldmkit.cli import restore as _restore  # noqa: E402, F401


def main() -> None:
    """Entry point of the `ldmkit` console script."""
    app()


if __name__ == "__main__":
    main()
