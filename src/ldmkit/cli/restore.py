"""`ldmkit upscale`, `ldmkit inpaint` and `ldmkit eval spatial`: the spatially conditioned
models (concatenation) on the user's images and on held-out ground truth."""

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ldmkit.cli.common import Device, app, checked, eval_app, fail, sampling_options
from ldmkit.cli.eval_data import EvalDataOption, heldout_config
from ldmkit.inputs import check_count, check_output_image

if TYPE_CHECKING:
    import torch

    from ldmkit.pipeline import LatentDiffusion
    from ldmkit.samplers import SamplingOptions

Checkpoint = Annotated[
    Path,
    typer.Option(
        help="Spatially conditioned model: an ldmkit folder (RUN/model), or for inpainting a "
        "Stable Diffusion inpainting file or diffusers folder"
    ),
]


def _load(
    checkpoint: Path, device: str, options: "SamplingOptions"
) -> tuple["LatentDiffusion", "SamplingOptions"]:
    """The model, and `options` resolved for it (auto precision -> what will run)."""
    from ldmkit.checkpoint import CheckpointError
    from ldmkit.hardware import select_device
    from ldmkit.interop.load import load
    from ldmkit.precision import resolve_precision

    try:
        where = select_device(device)
        # A half precision holds the UNet's weights in it (half the memory, no per-step cast).
        precision = resolve_precision(options.precision, where)
        model = load(checkpoint, where, precision=precision)
        return model, model.resolve(replace(options, precision=precision))
    except (CheckpointError, ValueError) as error:
        raise fail(str(error)) from error


def _read(path: Path) -> "torch.Tensor":
    """An image file as (1, 3, H, W) in [-1, 1]; unreadable files are a clear error."""
    from ldmkit.data.fit import image_to_tensor
    from ldmkit.data.image_folder import ImageLoadError, load_image

    try:
        return image_to_tensor(load_image(path))[None]
    except ImageLoadError as error:
        raise fail(str(error)) from error


def _write(images: "torch.Tensor", out: Path, params: dict[str, object]) -> None:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from ldmkit.images import to_uint8

    info = PngInfo()
    info.add_text("ldmkit", json.dumps(params))
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(images)[0]).save(out, pnginfo=info)
    typer.echo(json.dumps({"out": str(out), **params}))


@app.command("upscale")
@sampling_options(guidance=None)
def upscale_command(
    image: Annotated[Path, typer.Argument(help="Low-resolution input image")],
    out: Annotated[Path, typer.Argument(help="PNG to write (input size x the model's factor)")],
    checkpoint: Checkpoint,
    options: "SamplingOptions",
    prompt: Annotated[
        str | None, typer.Option(help="What the image shows (text-conditioned upscalers)")
    ] = None,
    noise_level: Annotated[
        int | None,
        typer.Option(help="Noise-augmented upscalers: the low-resolution image's noise level"),
    ] = None,
    device: Device = "auto",
) -> None:
    """Super-resolve an image of any size; inputs larger than the training size are processed
    in overlapping latent tiles (default: the training side) blended without seams. Stable
    Diffusion's x4 upscaler takes --prompt and --noise-level (default 20)."""
    from ldmkit.evaluation.restoration import upscale

    checked(lambda: check_output_image("OUT", out))
    model, options = _load(checkpoint, device, options)
    low = _read(image)
    try:
        if noise_level is not None:
            model.set_noise_level(noise_level)
        prompts = [prompt or ""] if model.takes_prompts else None
        if prompt is not None and prompts is None:
            raise ValueError(f"{checkpoint} takes no prompt; leave --prompt out")
        result = upscale(model, low, options, prompts=prompts)
    except ValueError as error:
        raise fail(str(error)) from error
    params = {"checkpoint": str(checkpoint), "input": str(image)}
    params |= {
        k: str(v) for k, v in (("prompt", prompt), ("noise_level", noise_level)) if v is not None
    }
    _write(result, out, {**params, **options.to_dict()})


@app.command("inpaint")
@sampling_options(guidance=None)
def inpaint_command(
    checkpoint: Checkpoint,
    image: Annotated[Path, typer.Option(help="Image with something to replace")],
    mask: Annotated[Path, typer.Option(help="Same-size mask: white where to fill, black to keep")],
    options: "SamplingOptions",
    prompt: Annotated[
        str | None, typer.Option(help="What to paint in the hole (text-conditioned models)")
    ] = None,
    out: Annotated[Path, typer.Option(help="PNG to write")] = Path("inpainted.png"),
    paste: Annotated[bool, typer.Option(help="Copy the known pixels back exactly")] = True,
    device: Device = "auto",
) -> None:
    """Fill the white part of the mask from the rest of the image (and the prompt, for a
    text-conditioned model such as Stable Diffusion's inpainting ones)."""
    from ldmkit.evaluation.restoration import inpaint

    checked(lambda: check_output_image("--out", out))
    model, options = _load(checkpoint, device, options)
    picture, holes = _read(image), _read(mask)
    if holes.shape[-2:] != picture.shape[-2:]:
        size = "x".join(map(str, picture.shape[-2:]))
        raise fail(f"the mask {mask} must have the image's size ({size} pixels, H x W)")
    holes = (holes.mean(1, keepdim=True) > 0).float()  # white (> mid-grey) = fill
    try:
        prompts = [prompt or ""] if model.takes_prompts else None
        if prompt is not None and prompts is None:
            raise ValueError(f"{checkpoint} takes no prompt; leave --prompt out")
        result = inpaint(model, picture, holes, options, paste=paste, prompts=prompts)
    except ValueError as error:
        raise fail(str(error)) from error
    params = {"checkpoint": str(checkpoint), "image": str(image), "mask": str(mask)}
    if prompt is not None:
        params["prompt"] = prompt
    _write(result, out, {**params, **options.to_dict()})


@eval_app.command("spatial")
@sampling_options(guidance=1.0)
def eval_spatial_command(
    checkpoint: Checkpoint,
    options: "SamplingOptions",
    n: Annotated[int, typer.Option(help="Held-out images")] = 200,
    grid: Annotated[Path | None, typer.Option(help="PNG grid of the first 8")] = None,
    data: EvalDataOption = None,
    device: Device = "auto",
) -> None:
    """Super-resolution: PSNR/SSIM of the model and of bicubic vs the originals; inpainting:
    PSNR in the hole and on its border vs a mean-colour fill; semantic synthesis: per-pixel
    agreement of the outputs' objects with the maps. JSON."""
    from ldmkit.checkpoint import CheckpointError
    from ldmkit.config import ConfigError
    from ldmkit.data.factory import build_dataset
    from ldmkit.evaluation.restoration import evaluate_inpainting, evaluate_super_resolution
    from ldmkit.evaluation.semantic import evaluate_semantic_synthesis

    checked(
        lambda: check_count("--n", n),
        lambda: grid is None or check_output_image("--grid", grid),
    )
    model, options = _load(checkpoint, device, options)
    spatial = model.spatial
    if spatial is None:
        raise fail(f"{checkpoint} has no spatial condition; use `ldmkit eval checkpoint`")
    evaluate = {
        "inpaint": evaluate_inpainting,
        "super_resolution": evaluate_super_resolution,
        "semantic": evaluate_semantic_synthesis,
    }[spatial.kind]
    try:
        heldout = build_dataset(heldout_config(checkpoint, data), "heldout", n)
        result = evaluate(model, heldout, n, options, grid=grid)
    except (CheckpointError, ConfigError, ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from error
    typer.echo(json.dumps({"checkpoint": str(checkpoint), **result}))
