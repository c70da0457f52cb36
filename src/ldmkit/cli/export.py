"""`ldmkit export`: any model ldmkit reads, written for other tools (a diffusers folder, or a
Stable Diffusion single file with its original YAML config)."""

from pathlib import Path
from typing import Annotated

import typer

from ldmkit.cli.common import Ema, OriginalConfig, Prediction, app, fail

FORMATS = ("diffusers", "single-file")


@app.command("export")
def export_command(
    model: Annotated[
        Path,
        typer.Argument(
            help="What to write: an ldmkit model folder, a Stable Diffusion file or a diffusers "
            "folder (anything `ldmkit sample --checkpoint` reads)"
        ),
    ],
    out: Annotated[
        Path,
        typer.Argument(help="A new folder (diffusers) or OUT.safetensors (single-file)"),
    ],
    format_: Annotated[
        str,
        typer.Option("--format", help="diffusers (a pipeline folder) or single-file"),
    ] = "diffusers",
    ema: Ema = False,
    prediction: Prediction = None,
    config: OriginalConfig = None,
) -> None:
    """Write MODEL for other tools: `--format diffusers` a folder diffusers loads
    (`StableDiffusionPipeline.from_pretrained` for a CLIP-conditioned model; the UNet, VAE and
    scheduler for others), `--format single-file` OUT.safetensors with OUT.yaml (the original
    config) beside it."""
    if format_ not in FORMATS:
        raise fail(f"--format must be one of {', '.join(FORMATS)}; got {format_!r}")
    if format_ == "single-file" and out.suffix != ".safetensors":
        raise fail(f"OUT must end in .safetensors for --format single-file; got {out}")
    if out.exists():
        raise fail(f"OUT {out} exists; choose a new path (nothing there is replaced)")
    from ldmkit.checkpoint import CheckpointError
    from ldmkit.interop.load import load

    try:
        loaded = load(model, "cpu", ema=ema, prediction=prediction, original_config=config)
        if format_ == "single-file":
            from ldmkit.interop.export_single_file import export_single_file

            weights, yaml_path = export_single_file(loaded, out)
            typer.echo(f"wrote {weights} and its original config {yaml_path}")
            return
        from ldmkit.interop.export_diffusers import conditioners_left_out, export_diffusers

        export_diffusers(loaded, out)
    except ImportError as error:
        raise fail(f"--format diffusers needs the diffusers package ({error})") from error
    except (CheckpointError, ValueError) as error:
        raise fail(str(error)) from error
    typer.echo(f"wrote {out}")
    left_out = conditioners_left_out(loaded)
    if left_out:
        typer.echo(
            f"note: diffusers has no class for this model's {', '.join(left_out)} conditioner: "
            "the folder holds unet/, vae/ and scheduler/, without a pipeline"
        )
