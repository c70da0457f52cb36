"""The `ldmkit` command line: a thin skin over the library."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

from ldmkit.config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict

if TYPE_CHECKING:
    from ldmkit.metrics.class_evaluator import ClassEvaluator
    from ldmkit.metrics.feature_network import FeatureNetwork

app = typer.Typer(no_args_is_help=True, help="Latent Diffusion Models: train, sample, evaluate.")
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate checkpoints on held-out data.")
data_app = typer.Typer(no_args_is_help=True, help="Prepare the real datasets that install offline.")
app.add_typer(eval_app, name="eval")
app.add_typer(data_app, name="data")

Overrides = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config key: --set run.steps=500")
]


# The adherence / FID evaluator of the eval commands.
EvaluatorOption = Annotated[
    Path | None,
    typer.Option(help="Evaluator folder (ldmkit train-evaluator); default: the shipped shapes one"),
]


def _load_evaluator(path: Path | None, device: str) -> "ClassEvaluator":
    """The evaluator at `path`, or the shipped shapes evaluator."""
    from ldmkit.assets import SHAPES_EVALUATOR
    from ldmkit.checkpoint import load_evaluator
    from ldmkit.training.runtime import select_device

    return load_evaluator(path or SHAPES_EVALUATOR, select_device(device))


# The standard FID network instead of the evaluator's features, from a local weights file.
InceptionOption = Annotated[
    Path | None,
    typer.Option(
        help="FID InceptionV3 weights (pytorch-fid pt_inception-2015-12-05-6726825d.pth or "
        "torch-fidelity's file) for FID/KID/precision/recall; default: the evaluator's features"
    ),
]
InceptionResizeOption = Annotated[
    str, typer.Option(help="Match pytorch-fid or torch-fidelity preprocessing")
]


def _load_features(inception: Path | None, resize: str, device: str) -> "FeatureNetwork | None":
    """The FID InceptionV3 at `inception` (None when not asked for)."""
    if inception is None:
        return None
    from ldmkit.metrics.inception import load_inception
    from ldmkit.training.runtime import select_device

    if resize not in ("pytorch-fid", "torch-fidelity"):
        raise ValueError(f"--inception-resize must be pytorch-fid or torch-fidelity, got {resize}")
    return load_inception(inception, resize).to(select_device(device))  # type: ignore[arg-type]


def _features_name(inception: Path | None, resize: str) -> str:
    return f"inception-v3 ({resize} preprocessing)" if inception else "evaluator"


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def _config_data(
    preset: str | None, config: Path | None, presets: dict[str, Any], default: str
) -> dict[str, Any]:
    """Plain config data from a YAML file or a named preset (never both)."""
    if preset and config:
        raise _fail("give --preset or --config, not both")
    if config:
        return load_yaml(config)
    name = preset or default
    if name not in presets:
        raise _fail(f"unknown preset {name!r}; presets: {', '.join(presets)}")
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
        raise _fail(str(error)) from error
    try:
        result = train_autoencoder(cfg, out, resume=resume)
    except (ValueError, FileNotFoundError, TrainingDiverged) as error:
        raise _fail(str(error)) from error
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
        raise _fail(str(error)) from error
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
    guidance: float = 3.0,
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
        raise _fail(str(error)) from error
    labels = None
    classes = model.config.num_classes
    if per_class is not None:
        if not classes or class_ is not None or per_class < 1:
            raise _fail("--per-class K (K >= 1) needs a class-conditional model and no --class")
        n = per_class * classes
    if classes:
        if class_ is not None and not 0 <= class_ < classes:
            raise _fail(f"--class must be in 0..{classes - 1}")
        if class_ is not None:
            labels = torch.full((n,), class_)
        elif per_class:
            labels = torch.arange(classes).repeat_interleave(per_class)
        else:
            labels = torch.arange(n) % classes
    try:
        texts = _prompts(prompt, prompts)
    except (OSError, UnicodeDecodeError) as error:
        raise _fail(f"cannot read --prompts {prompts}: {error}") from error
    is_text = model.text_encoder is not None
    if is_text != bool(texts):
        raise _fail(
            "this model is text-conditional: pass --prompt TEXT or --prompts FILE"
            if is_text
            else "--prompt/--prompts need a text-conditional model"
        )
    if per_prompt is not None:
        if not texts or per_prompt < 1:
            raise _fail("--per-prompt K (K >= 1) needs prompts")
        n = per_prompt * len(texts)
        texts = [t for t in texts for _ in range(per_prompt)]
    elif texts:
        texts = [texts[i % len(texts)] for i in range(n)]
    try:
        images = model.sample(
            n, labels, guidance, sampler, steps, seed, show_progress=True, prompts=texts or None
        )
    except ValueError as error:
        raise _fail(str(error)) from error
    params = {
        "checkpoint": str(checkpoint),
        "n": n,
        "sampler": sampler,
        "steps": steps,
        "guidance": guidance,
        "class": class_,
        "per_class": per_class,
        "seed": seed,
    }
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
        raise _fail(f"unknown preset {name!r}; presets: {', '.join(both)}")
    typer.echo(yaml.safe_dump(to_dict(both[name]), sort_keys=False))


@eval_app.command("reconstruction")
def eval_reconstruction_command(
    checkpoint: Annotated[Path, typer.Option(help="Autoencoder folder (RUN/model)")],
    data: Annotated[
        str, typer.Option(help="shapes, fashion-mnist, emoji:PATH or an image folder")
    ] = "shapes",
    n: Annotated[int, typer.Option(help="Number of held-out images")] = 512,
    resolution: Annotated[int | None, typer.Option(help="Default: the training resolution")] = None,
    evaluator: Annotated[
        Path | None,
        typer.Option(help="Features for rFID (default for shapes: the shipped evaluator)"),
    ] = None,
    inception: InceptionOption = None,
    inception_resize: InceptionResizeOption = "pytorch-fid",
    batch_size: int = 64,
    device: str = "auto",
) -> None:
    """PSNR / SSIM, rFID and encode/decode throughput on held-out data; prints JSON."""
    from ldmkit.assets import SHAPES_EVALUATOR
    from ldmkit.checkpoint import CheckpointError, load_autoencoder, load_evaluator, read_config
    from ldmkit.data.config import DataConfig
    from ldmkit.data.factory import build_dataset
    from ldmkit.evaluation.reconstruction import evaluate_reconstruction
    from ldmkit.training.runtime import select_device

    try:
        model = load_autoencoder(checkpoint, select_device(device))
        trained = read_config(checkpoint, "autoencoder").get("training", {}).get("data", {})
        features = evaluator or (SHAPES_EVALUATOR if data == "shapes" else None)
        scorer = _load_features(inception, inception_resize, device) or (
            load_evaluator(features, select_device(device)) if features else None
        )
    except (CheckpointError, ValueError, FileNotFoundError) as error:
        raise _fail(str(error)) from error
    res = resolution or trained.get("resolution", 64)
    try:
        data_config = _data_config(data, res, DataConfig)
        dataset = build_dataset(data_config, "heldout", n)
    except (ValueError, FileNotFoundError) as error:
        raise _fail(str(error)) from error
    result = evaluate_reconstruction(model, dataset, n, batch_size, scorer)
    typer.echo(
        json.dumps({"checkpoint": str(checkpoint), "data": data, "resolution": res, **result})
    )


def _data_config(spec: str, resolution: int, cls):
    """`shapes` | `fashion-mnist` | `emoji:PATH` | a folder path -> DataConfig."""
    if spec in ("shapes", "fashion-mnist"):
        return cls(kind=spec, resolution=resolution, cache=False)
    if spec.startswith("emoji:"):
        return cls(kind="emoji", path=spec[6:], resolution=resolution, cache=False)
    return cls(kind="folder", path=spec, resolution=resolution, cache=False)


@eval_app.command("checkpoint")
def eval_checkpoint_command(
    checkpoint: Annotated[Path, typer.Option(help="Latent diffusion folder (RUN/model)")],
    evaluator: EvaluatorOption = None,
    n: Annotated[int, typer.Option(help="Samples (and held-out images)")] = 1000,
    guidance: float = 3.0,
    sampler: str = "ddim",
    steps: int = 50,
    seed: int = 0,
    out: Annotated[Path | None, typer.Option(help="Also write the Markdown table here")] = None,
    inception: InceptionOption = None,
    inception_resize: InceptionResizeOption = "pytorch-fid",
    device: str = "auto",
) -> None:
    """Sample N images once; FID/KID/precision/recall vs held-out data, adherence and
    throughput; JSON (+ .md)."""
    from ldmkit.checkpoint import (
        CheckpointError,
        load_latent_diffusion,
        training_data,
    )
    from ldmkit.data.factory import build_dataset
    from ldmkit.evaluation.checkpoint_report import evaluate_checkpoint, markdown_table
    from ldmkit.training.runtime import select_device

    try:
        model = load_latent_diffusion(checkpoint, select_device(device))
        scorer = _load_evaluator(evaluator, device)
        real = build_dataset(training_data(checkpoint), "heldout", n)
        features = _load_features(inception, inception_resize, device)
        result = evaluate_checkpoint(
            model, scorer, real, n, guidance, sampler, steps, seed, features=features
        )
    except (CheckpointError, ConfigError, ValueError, FileNotFoundError) as error:
        raise _fail(str(error)) from error
    result = {
        "checkpoint": str(checkpoint),
        "features": _features_name(inception, inception_resize),
        **result,
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"# Evaluation of {checkpoint}\n\n" + markdown_table(result))
    typer.echo(json.dumps(result))


@eval_app.command("fid")
def eval_fid_command(
    fake: Annotated[
        Path, typer.Option(help="LDM checkpoint (RUN/model) to sample, or a folder of images")
    ],
    real: Annotated[
        str,
        typer.Option(
            help="auto (the checkpoint's training data, held-out split), shapes, fashion-mnist "
            "or an image folder"
        ),
    ] = "auto",
    evaluator: EvaluatorOption = None,
    inception: InceptionOption = None,
    inception_resize: InceptionResizeOption = "pytorch-fid",
    n: Annotated[int, typer.Option(help="Images per set")] = 1000,
    guidance: float = 3.0,
    sampler: str = "ddim",
    steps: int = 50,
    seed: int = 0,
    device: str = "auto",
) -> None:
    """FID, KID and precision/recall of generated images against held-out data, in the
    evaluator's features or (--inception) the standard FID InceptionV3's."""
    from ldmkit.checkpoint import (
        CheckpointError,
        load_latent_diffusion,
        training_data,
    )
    from ldmkit.data.config import DataConfig
    from ldmkit.data.factory import build_dataset
    from ldmkit.data.image_folder import ImageFolderDataset
    from ldmkit.evaluation.fid import dataset_features, distribution_scores
    from ldmkit.evaluation.generate import embed, generate
    from ldmkit.training.runtime import select_device

    result: dict[str, object] = {"fake": str(fake), "n": n}
    try:
        resolution = _load_evaluator(evaluator, device).config.resolution  # for image folders
        scorer = _load_features(inception, inception_resize, device) or _load_evaluator(
            evaluator, device
        )
        is_checkpoint = (fake / "config.json").is_file()
        if is_checkpoint:
            model = load_latent_diffusion(fake, select_device(device))
            images, _, seconds = generate(model, n, guidance, sampler, steps, seed)
            fake_features = embed(scorer, images)
            result.update(guidance=guidance, sampler=sampler, steps=steps, images_per_s=n / seconds)
        else:
            images = ImageFolderDataset(fake, resolution)
            fake_features = dataset_features(scorer, images, n)
        if real == "auto":
            if not is_checkpoint:
                raise ValueError("--real auto needs an LDM checkpoint as --fake; name the data")
            data = training_data(fake)
        else:
            data = _data_config(real, resolution, DataConfig)
        real_features = dataset_features(scorer, build_dataset(data, "heldout", n), n)
    except (CheckpointError, ConfigError, ValueError, FileNotFoundError) as error:
        raise _fail(str(error)) from error
    result.update(real=real if real != "auto" else f"auto: {data.kind} held-out")
    result.update(features=_features_name(inception, inception_resize))
    result.update(distribution_scores(real_features, fake_features))
    typer.echo(json.dumps(result))


@eval_app.command("adherence")
def eval_adherence_command(
    checkpoint: Annotated[Path, typer.Option(help="Class-conditional LDM folder (RUN/model)")],
    evaluator: EvaluatorOption = None,
    n: Annotated[int, typer.Option(help="Samples, cycling through the classes")] = 300,
    guidance: float = 3.0,
    sampler: str = "ddim",
    steps: int = 50,
    seed: int = 0,
    device: str = "auto",
) -> None:
    """Fraction of samples whose class (shapes: kind, colour, both) matches the one asked for."""
    from ldmkit.checkpoint import CheckpointError, load_latent_diffusion
    from ldmkit.evaluation.adherence import evaluate_adherence
    from ldmkit.training.runtime import select_device

    try:
        model = load_latent_diffusion(checkpoint, select_device(device))
        scorer = _load_evaluator(evaluator, device)
        result = evaluate_adherence(model, scorer, n, guidance, sampler, steps, seed)
    except (CheckpointError, ValueError) as error:
        raise _fail(str(error)) from error
    typer.echo(json.dumps({"checkpoint": str(checkpoint), **result}))


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
        raise _fail(f"unknown dataset {name!r}; datasets: {', '.join(DATASETS)}")
    try:
        path = prepare_dataset(name, out or Path("data") / name)
    except (FileNotFoundError, ValueError) as error:
        raise _fail(str(error)) from error
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


def main() -> None:
    """Entry point of the `ldmkit` console script."""
    app()


if __name__ == "__main__":
    main()
