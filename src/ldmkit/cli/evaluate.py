"""`ldmkit eval ...`: reconstruction, checkpoint, FID, adherence and layout reports (JSON)."""

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ldmkit.cli.common import (
    Device,
    Lora,
    checked,
    eval_app,
    fail,
    merge_loras,
    sampling_options,
)
from ldmkit.cli.eval_data import (
    EvalDataOption,
    fitting_evaluator,
    heldout_config,
    recorded_kind,
    with_data_overrides,
)
from ldmkit.config import ConfigError
from ldmkit.inputs import check_count, check_output_image

if TYPE_CHECKING:
    from ldmkit.metrics.feature_network import FeatureNetwork
    from ldmkit.samplers import SamplingOptions


# The adherence / FID evaluator of the eval commands.
EvaluatorOption = Annotated[
    Path | None,
    typer.Option(help="Evaluator folder (ldmkit train-evaluator); default: the shipped shapes one"),
]


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
    from ldmkit.hardware import select_device
    from ldmkit.metrics.inception import load_inception

    if resize not in ("pytorch-fid", "torch-fidelity"):
        raise ValueError(f"--inception-resize must be pytorch-fid or torch-fidelity, got {resize}")
    return load_inception(inception, resize).to(select_device(device))  # type: ignore[arg-type]


def _features_name(inception: Path | None, resize: str) -> str:
    return f"inception-v3 ({resize} preprocessing)" if inception else "evaluator"


@eval_app.command("reconstruction")
def eval_reconstruction_command(
    checkpoint: Annotated[Path, typer.Option(help="Autoencoder folder (RUN/model)")],
    data: Annotated[
        str | None,
        typer.Option(
            help="An image folder, shards:DIR or shards:PATTERN, emoji:DIR, shapes or "
            "fashion-mnist; default: the held-out "
            "split of the data the autoencoder was trained on"
        ),
    ] = None,
    n: Annotated[int, typer.Option(help="Number of held-out images")] = 512,
    resolution: Annotated[int | None, typer.Option(help="Default: the training resolution")] = None,
    evaluator: Annotated[
        Path | None,
        typer.Option(help="Features for rFID (default for shapes: the shipped evaluator)"),
    ] = None,
    inception: InceptionOption = None,
    inception_resize: InceptionResizeOption = "pytorch-fid",
    grid: Annotated[
        Path | None,
        typer.Option(help="PNG: 8 originals spread over the n, over their reconstructions"),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Change how the data is read: --set data.fit=native"),
    ] = None,
    batch_size: int = 64,
    device: Device = "auto",
) -> None:
    """PSNR / SSIM, rFID and encode/decode throughput on held-out data; prints JSON."""
    checked(
        lambda: check_count("--n", n),
        lambda: check_count("--batch-size", batch_size),
        lambda: resolution is None or check_count("--resolution", resolution),
        lambda: grid is None or check_output_image("--grid", grid),
    )
    from ldmkit.assets import SHAPES_EVALUATOR
    from ldmkit.checkpoint import CheckpointError, load_autoencoder, load_evaluator
    from ldmkit.data.factory import build_dataset
    from ldmkit.evaluation.reconstruction import evaluate_reconstruction
    from ldmkit.hardware import select_device

    try:
        model = load_autoencoder(checkpoint, select_device(device))
        data_config = heldout_config(checkpoint, data, "autoencoder")
        if resolution is not None:
            data_config = dataclasses.replace(data_config, resolution=resolution)
        data_config = with_data_overrides(data_config, overrides)
        shapes = SHAPES_EVALUATOR if data_config.kind == "shapes" else None
        features = evaluator or shapes
        scorer = _load_features(inception, inception_resize, device) or (
            load_evaluator(features, select_device(device)) if features else None
        )
        dataset = build_dataset(data_config, "heldout", n)
    except (CheckpointError, ConfigError, ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from error
    result: dict[str, object] = {
        **evaluate_reconstruction(model, dataset, n, batch_size, scorer, grid=grid)
    }
    if scorer is None:
        result["rfid"] = "not scored: pass --inception WEIGHTS (or --evaluator DIR)"
    record = {
        "checkpoint": str(checkpoint),
        "data": data or f"auto: {data_config.kind} held-out",
        "resolution": data_config.resolution,
        "features": _features_name(inception, inception_resize) if scorer else None,
        **result,
    }
    typer.echo(json.dumps(record))


@eval_app.command("checkpoint")
@sampling_options()
def eval_checkpoint_command(
    checkpoint: Annotated[Path, typer.Option(help="Latent diffusion folder (RUN/model)")],
    options: "SamplingOptions",
    evaluator: EvaluatorOption = None,
    data: EvalDataOption = None,
    n: Annotated[int, typer.Option(help="Samples (and held-out images)")] = 1000,
    out: Annotated[Path | None, typer.Option(help="Also write the Markdown table here")] = None,
    inception: InceptionOption = None,
    inception_resize: InceptionResizeOption = "pytorch-fid",
    lora: Lora = None,
    device: Device = "auto",
) -> None:
    """Sample N images once; FID/KID/precision/recall vs held-out data, adherence and
    throughput; JSON (+ .md)."""
    checked(lambda: check_count("--n", n))
    from ldmkit.checkpoint import CheckpointError, load_latent_diffusion
    from ldmkit.data.factory import build_dataset
    from ldmkit.evaluation.checkpoint_report import evaluate_checkpoint, markdown_table
    from ldmkit.hardware import select_device

    try:
        model = load_latent_diffusion(checkpoint, select_device(device))
        loras = merge_loras(model, lora)
        heldout = heldout_config(checkpoint, data)
        features = _load_features(inception, inception_resize, device)
        labelled = bool(model.num_classes or model.takes_prompts)
        scorer = None
        if evaluator is not None or features is None or heldout.kind == "shapes":
            use = "adherence" if features is not None else "FID"
            scorer = fitting_evaluator(evaluator, heldout.kind, device, use)
        real = build_dataset(heldout, "heldout", n)
        result = evaluate_checkpoint(model, scorer, real, n, options, features=features)
        if scorer is None and labelled:
            result["adherence"] = "not scored: pass --evaluator DIR (ldmkit train-evaluator)"
    except (CheckpointError, ConfigError, ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from error
    result = {
        "checkpoint": str(checkpoint),
        **({"loras": loras} if loras else {}),
        "features": _features_name(inception, inception_resize),
        **result,
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"# Evaluation of {checkpoint}\n\n" + markdown_table(result))
    typer.echo(json.dumps(result))


@eval_app.command("fid")
@sampling_options()
def eval_fid_command(
    fake: Annotated[
        Path, typer.Option(help="LDM checkpoint (RUN/model) to sample, or a folder of images")
    ],
    real: Annotated[
        str,
        typer.Option(
            "--real",
            "--data",
            help="auto (the checkpoint's training data, held-out split), an image folder, "
            "shards:DIR or shards:PATTERN, emoji:DIR, shapes or fashion-mnist (held-out split)",
        ),
    ] = "auto",
    evaluator: EvaluatorOption = None,
    inception: InceptionOption = None,
    inception_resize: InceptionResizeOption = "pytorch-fid",
    n: Annotated[int, typer.Option(help="Images per set")] = 1000,
    lora: Lora = None,
    device: Device = "auto",
    options: "SamplingOptions | None" = None,
) -> None:
    """FID, KID and precision/recall of generated images against held-out data, in the
    evaluator's features or (--inception) the standard FID InceptionV3's."""
    checked(lambda: check_count("--n", n))
    from ldmkit.checkpoint import CheckpointError, load_latent_diffusion
    from ldmkit.data.config import DataConfig
    from ldmkit.data.factory import build_dataset
    from ldmkit.data.image_folder import ImageFolderDataset
    from ldmkit.data.spec import data_fields
    from ldmkit.evaluation.batched import options_record
    from ldmkit.evaluation.fid import dataset_features, distribution_scores
    from ldmkit.evaluation.generate import embed, generate
    from ldmkit.hardware import select_device
    from ldmkit.samplers import SamplingOptions

    result: dict[str, object] = {"fake": str(fake), "n": n}
    try:
        is_checkpoint = (fake / "config.json").is_file()
        if is_checkpoint:
            data = heldout_config(fake, None if real == "auto" else real)
        elif real == "auto":
            raise ValueError("--real auto needs an LDM checkpoint as --fake; name the data")
        else:
            data = DataConfig(cache=False, **data_fields(real, "--real"))
        features = _load_features(inception, inception_resize, device)
        scorer = features or fitting_evaluator(evaluator, data.kind, device, "FID")
        # Image folders are read at the evaluator's size; the InceptionV3 resizes to 299 itself.
        size = scorer.config.resolution if features is None else 256  # type: ignore[union-attr]
        if is_checkpoint:
            model = load_latent_diffusion(fake, select_device(device))
            if lora:
                result.update(loras=merge_loras(model, lora))
            resolved = model.resolve(options or SamplingOptions())
            images, _, seconds = generate(model, n, resolved)
            fake_features = embed(scorer, images)
            result.update(options_record(resolved))  # "precision" is precision/recall's
            result.update(images_per_s=n / seconds)
        elif lora:
            raise ValueError("--lora merges into a model: give an LDM checkpoint as --fake")
        else:
            data = dataclasses.replace(data, resolution=size)
            images = ImageFolderDataset(fake, size)
            fake_features = dataset_features(scorer, images, n)
        real_features = dataset_features(scorer, build_dataset(data, "heldout", n), n)
    except (CheckpointError, ConfigError, ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from error
    result.update(real=real if real != "auto" else f"auto: {data.kind} held-out")
    result.update(features=_features_name(inception, inception_resize))
    result.update(distribution_scores(real_features, fake_features))
    typer.echo(json.dumps(result))


@eval_app.command("adherence")
@sampling_options()
def eval_adherence_command(
    checkpoint: Annotated[Path, typer.Option(help="Class-conditional LDM folder (RUN/model)")],
    options: "SamplingOptions",
    evaluator: EvaluatorOption = None,
    n: Annotated[int, typer.Option(help="Samples, cycling through the classes")] = 300,
    lora: Lora = None,
    device: Device = "auto",
) -> None:
    """Fraction of samples whose class (shapes: kind, colour, both) matches the one asked for."""
    checked(lambda: check_count("--n", n))
    from ldmkit.checkpoint import CheckpointError, load_latent_diffusion
    from ldmkit.evaluation.adherence import evaluate_adherence
    from ldmkit.hardware import select_device

    try:
        model = load_latent_diffusion(checkpoint, select_device(device))
        loras = merge_loras(model, lora)
        scorer = fitting_evaluator(evaluator, recorded_kind(checkpoint), device, "adherence")
        result = evaluate_adherence(model, scorer, n, options)
    except (CheckpointError, ValueError) as error:
        raise fail(str(error)) from error
    record = {"checkpoint": str(checkpoint), **({"loras": loras} if loras else {})}
    typer.echo(json.dumps({**record, **result}))


@eval_app.command("layout")
@sampling_options()
def eval_layout_command(
    checkpoint: Annotated[Path, typer.Option(help="Layout-conditional LDM folder (RUN/model)")],
    options: "SamplingOptions",
    evaluator: EvaluatorOption = None,
    n: Annotated[int, typer.Option(help="Held-out layouts")] = 200,
    grid: Annotated[Path | None, typer.Option(help="PNG grid of the first 8, boxes drawn")] = None,
    data: EvalDataOption = None,
    device: Device = "auto",
) -> None:
    """Fraction of the requested objects found at their boxes (IoU >= 0.5, right colour; and
    right kind by the evaluator), for the model and for the real images. JSON."""
    checked(
        lambda: check_count("--n", n), lambda: grid is None or check_output_image("--grid", grid)
    )
    from ldmkit.checkpoint import CheckpointError, load_latent_diffusion
    from ldmkit.data.factory import build_dataset
    from ldmkit.evaluation.layout import evaluate_layout
    from ldmkit.hardware import select_device

    try:
        model = load_latent_diffusion(checkpoint, select_device(device))
        heldout_data = heldout_config(checkpoint, data)
        scorer = fitting_evaluator(evaluator, heldout_data.kind, device, "layouts")
        heldout = build_dataset(heldout_data, "heldout", n)
        result = evaluate_layout(model, heldout, n, scorer, options, grid=grid)
    except (CheckpointError, ConfigError, ValueError) as error:
        raise fail(str(error)) from error
    typer.echo(json.dumps({"checkpoint": str(checkpoint), **result}))


@eval_app.command("relations")
@sampling_options()
def eval_relations_command(
    checkpoint: Annotated[Path, typer.Option(help="Text-conditional LDM folder (RUN/model)")],
    options: "SamplingOptions",
    evaluator: EvaluatorOption = None,
    n: Annotated[int, typer.Option(help="Two-object held-out captions")] = 200,
    device: Device = "auto",
) -> None:
    """Two-object prompts (held-out shapes captions): both objects drawn (colour and kind by
    the evaluator) and their relation right, for the model and for the real images. JSON."""
    checked(lambda: check_count("--n", n))
    from ldmkit.checkpoint import CheckpointError, load_latent_diffusion, training_data
    from ldmkit.data.config import DataConfig
    from ldmkit.data.factory import build_dataset
    from ldmkit.evaluation.relations import evaluate_relations
    from ldmkit.hardware import select_device

    try:
        model = load_latent_diffusion(checkpoint, select_device(device))
        scorer = fitting_evaluator(evaluator, recorded_kind(checkpoint), device, "relations")
        data = training_data(checkpoint)
        if data.kind != "shapes" or data.single_object or data.max_objects < 2:
            data = DataConfig(resolution=data.resolution)  # multi-object shapes captions
        # About one scene in five has two objects of different colours; the search stops at n.
        heldout = build_dataset(dataclasses.replace(data, cache=False), "heldout", max(8 * n, 400))
        result = evaluate_relations(model, scorer, heldout, n, options)
    except (CheckpointError, ConfigError, ValueError) as error:
        raise fail(str(error)) from error
    typer.echo(json.dumps({"checkpoint": str(checkpoint), **result}))
