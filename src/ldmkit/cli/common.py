"""What every `ldmkit` subcommand shares: the command groups and the error exit."""

from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Latent Diffusion Models: train, sample, evaluate.")
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate checkpoints on held-out data.")
data_app = typer.Typer(no_args_is_help=True, help="Prepare the real datasets that install offline.")
app.add_typer(eval_app, name="eval")
app.add_typer(data_app, name="data")

Overrides = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config key: --set run.steps=500")
]


# The sampling options every sampling command shares (same names, defaults given at the use).
Guidance = Annotated[float, typer.Option(help="Classifier-free guidance scale (1 = none)")]
Sampler = Annotated[str, typer.Option(help="ddpm, ddim, plms or dpm++2m")]
Steps = Annotated[int, typer.Option(help="Sampler steps")]
Seed = Annotated[int, typer.Option(help="Sample i draws its noise from seed + i")]
Device = Annotated[str, typer.Option(help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N")]
Precision = Annotated[
    str,
    typer.Option(
        help="The UNet's precision: fp32, bf16 or fp16 (autocast; the rest fp32), or auto (bf16 "
        "where the device runs it natively, else fp32; on CUDA without bf16, fp16)"
    ),
]
Compile = Annotated[
    bool,
    typer.Option(
        "--compile",
        help="Run the UNet compiled (torch.compile, frozen weights, channels-last): pays a "
        "one-off compile (tens of seconds), then each step runs faster",
    ),
]


def fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)
