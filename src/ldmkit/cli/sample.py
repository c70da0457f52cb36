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
    OriginalConfig,
    Prediction,
    app,
    checked,
    fail,
    sampling_options,
)
from ldmkit.inputs import check_count, check_fraction, check_output_image, check_side

if TYPE_CHECKING:
    from ldmkit.samplers import SamplingOptions


@app.command("sample")
@sampling_options(guidance=None)
def sample_command(
    checkpoint: Annotated[
        Path,
        typer.Option(help="Latent diffusion folder: ldmkit's (RUN/model) or a diffusers SD folder"),
    ],
    options: "SamplingOptions",
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
    latent_size: Annotated[
        int | None,
        typer.Option(help="Latent side (default: the training side; larger samples bigger images)"),
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
    ema: Ema = False,
    prediction: Prediction = None,
    config: OriginalConfig = None,
    device: Device = "auto",
) -> None:
    """Generate a grid of samples; the PNG's text metadata records how to reproduce it."""
    checked(
        lambda: check_count("--n", n),
        lambda: per_class is None or check_count("--per-class", per_class),
        lambda: per_prompt is None or check_count("--per-prompt", per_prompt),
        lambda: check_side("--latent-size", latent_size),
        lambda: check_fraction("--strength", strength),
        lambda: check_output_image("--out", out),
    )
    import torch
    from PIL.PngImagePlugin import PngInfo

    from ldmkit.checkpoint import CheckpointError, training_data
    from ldmkit.data.factory import class_names
    from ldmkit.hardware import select_device
    from ldmkit.images import image_grid, labelled_grid
    from ldmkit.interop.load import load
    from ldmkit.precision import resolve_precision

    try:
        where = select_device(device)
        # A half precision holds the UNet's weights in it (half the memory, no per-step cast),
        # read straight into it from a single file.
        precision = resolve_precision(options.precision, where)
        model = load(
            checkpoint,
            where,
            ema=ema,
            prediction=prediction,
            original_config=config,
            precision=precision,
        )
        # Recorded as run: guidance and precision resolved.
        options = model.resolve(replace(options, precision=precision))
    except (CheckpointError, ValueError) as error:
        raise fail(str(error)) from error
    labels = None
    classes = model.num_classes
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
    is_text = model.takes_prompts
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
    layouts = _layouts(model, layout or [], n)
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
        f = model.autoencoder.factor
        height, width = init_images.shape[-2:]
        if height % f or width % f:
            raise fail(
                f"--init-image {init_image} is {width}x{height} pixels; each side must be a "
                f"multiple of the first stage's f={f} (e.g. crop it to "
                f"{width // f * f}x{height // f * f})"
            )
    try:
        images = model.sample(
            n,
            labels,
            prompts=texts or None,
            layouts=layouts,
            condition=condition,
            options=options,
            init_images=init_images,
            strength=strength,
            latent_size=latent_size,
            show_progress=True,
        )
    except ValueError as error:
        raise fail(str(error)) from error
    params = {
        "checkpoint": str(checkpoint),
        "n": n,
        **options.to_dict(),
        "class": class_,
        "per_class": per_class,
        "latent_size": latent_size,
        **({"ema": True} if ema else {}),
        **({"prediction": prediction} if prediction else {}),
        **({"config": str(config)} if config else {}),
    }
    if init_image is not None:
        params.update(init_image=str(init_image), strength=strength)
    if semantic is not None:
        params.update(semantic=str(semantic))
    if layout:
        params.update(layout=[str(path) for path in layout])
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
        _write_singles(images, out, params, labels, texts, options.seed)
    typer.echo(json.dumps({"out": str(out), **params}))


def _write_singles(
    images: Any, out: Path, params: dict[str, Any], labels: Any, texts: list[str], seed: int
) -> None:
    """Each image as OUT-NNN.png, its metadata that of one sample (its seed, class, prompt)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from ldmkit.images import to_uint8

    for i, array in enumerate(to_uint8(images)):
        label = int(labels[i]) if labels is not None else None
        single = {**params, "index": i, "seed": seed + i, "n": 1, "class": label}
        if texts:
            single.update(prompts=[texts[i]], per_prompt=None)
        meta = PngInfo()
        meta.add_text("ldmkit", json.dumps(single))
        Image.fromarray(array).save(out.with_name(f"{out.stem}-{i:03d}.png"), pnginfo=meta)


def _semantic_condition(model: Any, path: Path, n: int) -> Any:
    """The spatial condition of a label-map PNG (grey value = class id), repeated n times."""
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    spatial = model.spatial
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


def _layouts(model: Any, paths: list[Path], n: int) -> Any:
    """The --layout files as n layouts (cycled), checked against the model."""
    from ldmkit.conditioning import BBoxTokensCondition, check_layout, read_layout
    from ldmkit.data.shapes import class_id_of

    if model.takes_layouts != bool(paths):
        raise fail(
            "this model is layout-conditional: pass --layout BOXES.json"
            if model.takes_layouts
            else "--layout needs a layout-conditional model"
        )
    if not paths:
        return None

    def class_id(name: str) -> int:
        if isinstance(model.layout, BBoxTokensCondition):  # the released OpenImages model
            return model.layout.class_id(name)
        words = name.split()
        if len(words) != 2:
            raise ValueError(f"class {name!r}: name it as 'colour kind', e.g. 'red circle'")
        return class_id_of(words[1], words[0])

    try:
        found = [check_layout(read_layout(path, class_id), model.layout) for path in paths]
    except ValueError as error:
        raise fail(str(error)) from error
    return [found[i % len(found)] for i in range(n)]


def _prompts(given: list[str] | None, path: Path | None) -> list[str]:
    """--prompt values, then the non-empty lines of the --prompts file."""
    texts = list(given or [])
    if path is not None:
        texts += [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return texts
