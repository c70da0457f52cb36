"""`ldmkit sample`: images from a latent diffusion checkpoint, for any condition it takes
(classes, prompts, layouts, semantic maps), image-to-image and beyond the training size."""

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ldmkit.cli.common import (
    Device,
    Ema,
    Lora,
    OriginalConfig,
    Prediction,
    app,
    checked,
    fail,
    merge_loras,
    sampling_options,
)
from ldmkit.cli.sample_flags import given, request_from_flags, rerun, write_samples
from ldmkit.inputs import InputError, check_count, check_fraction, check_output_image, check_side

if TYPE_CHECKING:
    from ldmkit.samplers import SamplingOptions


@app.command("sample")
@sampling_options(guidance=None)
def sample_command(
    context: typer.Context,
    options: "SamplingOptions",
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="A model: ldmkit's folder (RUN/model), a diffusers folder, an SD single file"
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Grid PNG to write")] = Path("samples.png"),
    n: int = 16,
    class_: Annotated[
        int | None, typer.Option("--class", help="Class id for every sample (default: cycle)")
    ] = None,
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
    negative_prompt: Annotated[
        str | None, typer.Option(help="Text models: what guidance steers away from")
    ] = None,
    latent_size: Annotated[
        int | None,
        typer.Option(help="Latent side (default: the training side; larger samples bigger images)"),
    ] = None,
    width: Annotated[
        int | None, typer.Option(help="Image width in pixels (a multiple of f)")
    ] = None,
    height: Annotated[
        int | None, typer.Option(help="Image height in pixels (a multiple of f)")
    ] = None,
    semantic: Annotated[
        Path | None,
        typer.Option(help="Semantic models: a map PNG whose grey values are class ids (0 = none)"),
    ] = None,
    layout: Annotated[
        list[Path] | None,
        typer.Option(
            help='Layout models: a JSON list of {"class": "red circle" or id, "box": [x0, y0, '
            "x1, y1]} (fractions of the image); repeat for several"
        ),
    ] = None,
    init_image: Annotated[
        Path | None,
        typer.Option(help="Image-to-image: start from this image noised to --strength"),
    ] = None,
    strength: Annotated[
        float, typer.Option(help="Image-to-image: 1 = from noise, small = close to the image")
    ] = 0.75,
    mask: Annotated[
        Path | None, typer.Option(help="Inpainting models: white = repaint (with --init-image)")
    ] = None,
    low_res: Annotated[
        Path | None, typer.Option(help="Super-resolution models: the image to enlarge")
    ] = None,
    from_: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Rerun the generation an ldmkit PNG records (bit for bit on the same machine); "
            "options given beside it change it",
        ),
    ] = None,
    lora: Lora = None,
    ema: Ema = False,
    prediction: Prediction = None,
    config: OriginalConfig = None,
    device: Device = "auto",
) -> None:
    """Generate a grid of samples; the PNG's text metadata records how to reproduce it (ldmkit's
    JSON, and the web UIs' `parameters` text)."""
    checked(
        lambda: check_count("--n", n),
        lambda: per_class is None or check_count("--per-class", per_class),
        lambda: per_prompt is None or check_count("--per-prompt", per_prompt),
        lambda: check_side("--latent-size", latent_size),
        lambda: check_side("--width", width),
        lambda: check_side("--height", height),
        lambda: check_fraction("--strength", strength),
        lambda: check_output_image("--out", out),
    )
    recorded: dict[str, Any] = {}
    if from_ is not None:
        from ldmkit.image_parameters import read_parameters

        checked(lambda: recorded.update(read_parameters(from_)[0] or {}))
        if not recorded:
            raise fail(f"--from {from_}: it carries the web UIs' text only, not ldmkit's JSON")
        if not given(context, "checkpoint"):
            checkpoint = Path(recorded.get("checkpoint", ""))
        ema = ema if given(context, "ema") else bool(recorded.get("ema", False))
        prediction = prediction if given(context, "prediction") else recorded.get("prediction")
        config = config if given(context, "config") else _path(recorded.get("config"))
        if not given(context, "lora"):
            lora = [f"{x['file']}:{x['scale']}" for x in recorded.get("loras", [])]
    if checkpoint is None:
        raise fail("give --checkpoint (or --from IMAGE.png, which records it)")
    from ldmkit.checkpoint import CheckpointError
    from ldmkit.generation import generate
    from ldmkit.hardware import select_device
    from ldmkit.interop.load import load
    from ldmkit.precision import resolve_precision

    try:
        where = select_device(device)
        if from_ is not None and not given(context, "precision") and "precision" in recorded:
            options = options.replace(precision=recorded["precision"])
        # A half precision holds the UNet's weights in it (half the memory, no per-step cast),
        # read straight into it from a single file.
        precision = resolve_precision(options.precision, where)
        # A rerun holds the weights as the recorded run did (a server keeps float32 weights
        # and samples half precision under autocast), so its arithmetic is the same.
        weights = recorded.get("weights", precision) if from_ is not None else precision
        model = load(
            checkpoint,
            where,
            ema=ema,
            prediction=prediction,
            original_config=config,
            precision=weights,
        )
    except (CheckpointError, ValueError) as error:
        raise fail(str(error)) from error
    applied = merge_loras(model, lora)
    flags = {
        "n": n, "class_": class_, "per_class": per_class, "prompt": prompt, "prompts": prompts,
        "per_prompt": per_prompt, "negative_prompt": negative_prompt, "latent_size": latent_size,
        "width": width, "height": height, "semantic": semantic, "layout": layout,
        "init_image": init_image, "strength": strength, "mask": mask, "low_res": low_res,
    }  # fmt: skip
    request = request_from_flags(model, flags, options, rerun=from_ is not None)
    first = 0
    if from_ is not None:
        request = rerun(context, request, recorded, from_)
        first = int(recorded.get("index", 0))
    # Recorded as run: guidance and precision resolved.
    request = replace(request, options=model.resolve(request.options.replace(precision=precision)))
    try:
        images = generate(model, request, show_progress=True)
    except InputError as error:
        raise fail(str(error)) from error
    from ldmkit.generation.parameters import model_name
    from ldmkit.interop.model_hash import model_hash

    described = {"checkpoint": str(checkpoint), "name": model_name(checkpoint)}
    described["hash"] = model_hash(checkpoint)
    extras = {
        "weights": model.weight_precision,
        **({"ema": True} if ema else {}),
        **({"prediction": prediction} if prediction else {}),
        **({"config": str(config)} if config else {}),
        **({"loras": applied} if applied else {}),
    }
    grid = None
    if from_ is not None and "index" in recorded and len(images) > 1:
        images = images[first : first + 1]  # one image of a batch: the batch rerun, it kept
    elif per_class:
        grid = ("rows", per_class, _class_names(checkpoint, model.num_classes))
    elif per_prompt:
        grid = ("rows", per_prompt, list(request.prompts[::per_prompt]))
    write_samples(images, out, request, described, extras, first, grid)
    if singles:
        for i in range(len(images)):
            single = out.with_name(f"{out.stem}-{i:03d}.png")
            write_samples(images[i : i + 1], single, request, described, extras, first + i)
    typer.echo(json.dumps({"out": str(out), **described, **extras, **request.to_dict()}))


def _class_names(checkpoint: Path, classes: int) -> list[str]:
    from ldmkit.checkpoint import CheckpointError, read_config, training_data
    from ldmkit.data.factory import class_names

    try:
        recorded = read_config(checkpoint, "latent-diffusion").get("training", {})
        if len(recorded.get("class_names", [])) == classes:  # a folder's sub-folders
            return list(recorded["class_names"])
        kind = training_data(checkpoint).kind
    except CheckpointError:
        kind = ""  # unnamed classes
    return class_names(kind, classes)


def _path(value: Any) -> Path | None:
    return Path(value) if value else None
