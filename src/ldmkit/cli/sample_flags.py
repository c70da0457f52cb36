"""`ldmkit sample`'s flags as the shared `GenerationRequest`, a recorded request rerun with the
flags given beside `--from`, and the grid or image written with its parameters."""

import json
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ldmkit.cli.common import fail
from ldmkit.inputs import InputError

if TYPE_CHECKING:  # imported where used: the CLI checks its flags before it loads torch
    from ldmkit.generation import GenerationRequest
    from ldmkit.pipeline import LatentDiffusion
    from ldmkit.samplers import SamplingOptions

# A request field -> the flags that set it (given on the command line, they override --from).
FIELD_FLAGS: dict[str, tuple[str, ...]] = {
    "prompts": ("prompt", "prompts", "per_prompt"),
    "negative_prompt": ("negative_prompt",),
    "classes": ("class_", "per_class"),
    "layouts": ("layout",),
    "semantic": ("semantic",),
    "init_image": ("init_image",),
    "strength": ("strength",),
    "mask": ("mask",),
    "low_res": ("low_res",),
    "width": ("latent_size", "width"),
    "height": ("latent_size", "height"),
    "count": ("n", "per_class", "per_prompt"),
}


def given(context: typer.Context, name: str) -> bool:
    """Whether option `name` was given on this command line (not left at its default)."""
    source = context.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _prompts(given_prompts: list[str] | None, path: Path | None) -> list[str]:
    """--prompt values, then the non-empty lines of the --prompts file."""
    texts = list(given_prompts or [])
    if path is not None:
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise fail(f"cannot read --prompts {path}: {error}") from error
        texts += [line.strip() for line in lines if line.strip()]
    return texts


def _layout_file(path: Path) -> list[Any]:
    try:
        boxes = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise fail(f"cannot read the layout {path}: {error}") from error
    if not isinstance(boxes, list):
        raise fail(f'{path}: a layout is a JSON list of {{"class": ..., "box": [...]}} objects')
    return boxes


def request_from_flags(
    model: "LatentDiffusion", flags: dict[str, Any], options: "SamplingOptions", rerun: bool
) -> "GenerationRequest":
    """The request `ldmkit sample`'s flags ask of `model` (grids per class or per prompt
    expanded into the classes and prompts of every image)."""
    from ldmkit.generation import GenerationRequest

    n, classes = flags["n"], ()
    per_class, per_prompt = flags["per_class"], flags["per_prompt"]
    if per_class is not None:
        if not model.num_classes or flags["class_"] is not None:
            raise fail("--per-class K (K >= 1) needs a class-conditional model and no --class")
        n = per_class * model.num_classes
        classes = tuple(c for c in range(model.num_classes) for _ in range(per_class))
    elif flags["class_"] is not None:
        if not model.num_classes:
            raise fail("--class needs a class-conditional model")
        if not 0 <= flags["class_"] < model.num_classes:
            raise fail(f"--class must be in 0..{model.num_classes - 1}")
        classes = (flags["class_"],)
    texts = _prompts(flags["prompt"], flags["prompts"])
    if model.takes_prompts != bool(texts) and not rerun:
        raise fail(
            "this model is text-conditional: pass --prompt TEXT or --prompts FILE"
            if model.takes_prompts
            else "--prompt/--prompts need a text-conditional model"
        )
    if model.takes_layouts != bool(flags["layout"]) and not rerun:
        raise fail(
            "this model is layout-conditional: pass --layout BOXES.json"
            if model.takes_layouts
            else "--layout needs a layout-conditional model"
        )
    if per_prompt is not None:
        if not texts:
            raise fail("--per-prompt K (K >= 1) needs prompts")
        n = per_prompt * len(texts)
        texts = [t for t in texts for _ in range(per_prompt)]
    width, height = flags["width"], flags["height"]
    if flags["latent_size"] is not None:
        if width is not None or height is not None:
            raise fail("give --latent-size or --width / --height, not both")
        width = height = flags["latent_size"] * model.autoencoder.factor

    def text(name: str) -> str | None:
        return str(flags[name]) if flags[name] is not None else None

    try:
        return GenerationRequest(
            prompts=tuple(texts),
            negative_prompt=flags["negative_prompt"],
            classes=classes,
            layouts=tuple(tuple(_layout_file(p)) for p in flags["layout"] or []),
            semantic=text("semantic"),
            init_image=text("init_image"),
            strength=flags["strength"],
            mask=text("mask"),
            low_res=text("low_res"),
            width=width,
            height=height,
            count=n,
            options=options,
        )
    except InputError as error:
        raise fail(str(error)) from error


def rerun(
    context: typer.Context, flagged: "GenerationRequest", recorded: dict[str, Any], source: Path
) -> "GenerationRequest":
    """The request an image recorded, with what this command line gave explicitly instead."""
    from ldmkit.generation import GenerationRequest
    from ldmkit.samplers import SamplingOptions

    try:
        base = GenerationRequest.from_dict(recorded, strict=False)
    except InputError as error:
        raise fail(f"--from {source}: {error}") from error
    values = base.to_dict()
    theirs = flagged.to_dict()
    for name, flags in FIELD_FLAGS.items():
        if any(given(context, flag) for flag in flags):
            values[name] = theirs[name]
    for option in fields(SamplingOptions):
        if given(context, "compile_" if option.name == "compile" else option.name):
            values[option.name] = theirs[option.name]
    try:
        return GenerationRequest.from_dict(values)
    except InputError as error:
        raise fail(str(error)) from error


def write_samples(
    images: Any,
    out: Path,
    request: "GenerationRequest",
    model: dict[str, str],
    extras: dict[str, Any],
    first: int = 0,
    grid: tuple[str, int, list[str]] | None = None,
) -> None:
    """`images` (image `first` of the request's batch onwards) to `out`: one image as it is, more
    as a grid (`grid`: ("rows", images per row, row labels) for one labelled row each)."""
    from PIL import Image

    from ldmkit.generation.parameters import save_image
    from ldmkit.images import image_grid, labelled_grid, to_uint8

    if len(images) == 1:
        picture = Image.fromarray(to_uint8(images)[0])
    elif grid is not None:
        picture = labelled_grid(images, grid[1], grid[2])
    else:
        picture = image_grid(images, nrow=min(len(images), 8))
    try:
        index = first if len(images) == 1 else None  # a grid is the whole batch
        save_image(picture, out, request, index, model, extras)
    except OSError as error:
        raise fail(f"cannot write --out {out}: {error}") from error
