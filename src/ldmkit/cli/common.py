"""What every `ldmkit` subcommand shares: the command groups and the error exit."""

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

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
# The registry's names (`ldmkit.samplers.SAMPLERS`), written out so that loading the CLI does
# not import torch; tests/cli/test_sampling_options.py holds the two equal.
SAMPLER_NAMES = ("ddpm", "ddim", "plms", "dpm++2m")
Sampler = Annotated[str, typer.Option(help=f"Sampler: {', '.join(SAMPLER_NAMES)}")]
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


def checked(*checks: Callable[[], Any]) -> None:
    """Run `ldmkit.inputs` checks before any work; the first failure exits 2 with its message."""
    from ldmkit.inputs import InputError

    try:
        for check in checks:
            check()
    except InputError as error:
        raise fail(str(error)) from error


Eta = Annotated[float, typer.Option(help="DDIM's stochasticity: 0 deterministic, 1 as DDPM")]
GuidanceRescale = Annotated[
    float,
    typer.Option(
        help="Guidance rescale phi in [0, 1] (Lin et al. 2024; 0 = off, 0.7 typical): tempers "
        "the over-exposure of strong guidance"
    ),
]
Spacing = Annotated[
    str | None,
    typer.Option(help="Timesteps: linspace, leading, trailing or logsnr (default: the sampler's)"),
]
Tile = Annotated[
    int | None,
    typer.Option(help="Denoise and decode in blended latent tiles of this side (bounded memory)"),
]
GuidanceOrDefault = Annotated[
    float | None,
    typer.Option(help="Classifier-free guidance (default 3; 1 for a model with no null condition)"),
]


def sampling_options(guidance: float | None = 3.0) -> Callable[[Callable[..., Any]], Any]:
    """A command decorator: the shared sampling options (--sampler, --steps, --guidance,
    --guidance-rescale, --eta, --spacing, --seed, --precision, --compile, --tile) are added to
    the command's options and reach it as one validated `SamplingOptions` in its `options`
    parameter; an invalid value exits with code 2 and a message naming the option. `guidance`
    is the command's default (None: the model's own)."""
    defaults: dict[str, tuple[Any, Any]] = {
        "sampler": (Sampler, "ddim"),
        "steps": (Steps, 50),
        "guidance": (GuidanceOrDefault if guidance is None else Guidance, guidance),
        "guidance_rescale": (GuidanceRescale, 0.0),
        "eta": (Eta, 0.0),
        "spacing": (Spacing, None),
        "seed": (Seed, 0),
        "precision": (Precision, "fp32"),
        "compile_": (Compile, False),
        "tile": (Tile, None),
    }

    def decorate(command: Callable[..., Any]) -> Any:
        signature = inspect.signature(command)
        kept = [p for p in signature.parameters.values() if p.name != "options"]
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
            for name, (a, d) in defaults.items()
        ]

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            from ldmkit.samplers import SamplingOptions

            chosen = {name: kwargs.pop(name) for name in defaults}
            chosen["compile"] = chosen.pop("compile_")
            try:
                options = SamplingOptions(**chosen)
            except ValueError as error:
                raise fail(str(error)) from error
            return command(**kwargs, options=options)

        run.__signature__ = signature.replace(parameters=kept + added)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in kept + added}
        return run

    return decorate
