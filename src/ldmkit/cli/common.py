"""What every `ldmkit` subcommand shares: the command groups and the error exit."""

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(no_args_is_help=True, help="Latent Diffusion Models: train, sample, evaluate.")
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate checkpoints on held-out data.")
data_app = typer.Typer(
    no_args_is_help=True,
    help="Datasets: prepare the real ones that install offline, write and index shards.",
)
app.add_typer(eval_app, name="eval")
app.add_typer(data_app, name="data")

Overrides = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config key: --set run.steps=500")
]


def with_data(data: dict[str, Any], spec: str | None) -> dict[str, Any]:
    """Config data with the kind and path of `--data SPEC` (before any --set)."""
    if spec is None:
        return data
    from ldmkit.data.spec import data_fields

    try:
        fields = data_fields(spec)
    except ValueError as error:
        raise typer.BadParameter(str(error).removeprefix("--data "), param_hint="--data") from None
    return {**data, "data": {**data.get("data", {}), **fields}}


# `--data` of the train commands; `--set data.*` still applies after it.
DataOption = Annotated[
    str | None,
    typer.Option(
        help="Train on this: an image folder (captions from metadata.jsonl or .txt files, or "
        "classes from sub-folders), shards:DIR or shards:'DIR/{00000..00099}.tar' (WebDataset "
        "tars), emoji:DIR, shapes or fashion-mnist. Replaces the preset's "
        "data kind and path; data.heldout_fraction of the files is held out"
    ),
]


# The sampling options every sampling command shares (same names, defaults given at the use).
Guidance = Annotated[float, typer.Option(help="Classifier-free guidance scale (1 = none)")]
# The registry's names (`ldmkit.samplers.SAMPLERS`), written out so that loading the CLI does
# not import torch; tests/cli/test_sampling_options.py holds the two equal.
SAMPLER_NAMES = (
    "ddpm", "ddim", "plms", "dpm++2m", "dpm++2m-sde", "euler", "euler-a", "heun", "unipc"
)  # fmt: skip
Sampler = Annotated[
    str,
    typer.Option(
        help=f"Sampler: {', '.join(SAMPLER_NAMES)}, or a web-UI name ('DPM++ 2M Karras', "
        "'Euler a') or a diffusers scheduler class"
    ),
]
Steps = Annotated[int, typer.Option(help="Sampler steps")]
Seed = Annotated[int, typer.Option(help="Sample i draws its noise from seed + i")]
Device = Annotated[str, typer.Option(help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N")]
Precision = Annotated[
    str,
    typer.Option(
        help="The UNet's precision: fp32, bf16 or fp16 (its weights held in that precision, "
        "under autocast; the rest fp32), or auto (bf16 where the device runs it natively, else "
        "fp32; on CUDA without bf16, fp16)"
    ),
]
# How a single file is read (`ldmkit.load`'s ema, prediction, original_config).
Ema = Annotated[
    bool, typer.Option("--ema", help="Single files: the UNet's EMA weights (model_ema.*)")
]
Prediction = Annotated[
    str | None,
    typer.Option(help="Stable Diffusion 2.x files: v (768-v, the default) or eps (512 base)"),
]
OriginalConfig = Annotated[
    Path | None,
    typer.Option(help="Single files: the model's original YAML config (overrides detection)"),
]
Lora = Annotated[
    list[str] | None,
    typer.Option(
        help="A LoRA to merge, FILE:SCALE (scale 1 if left out; repeat for several): "
        "ldmkit's, diffusers' or kohya's .safetensors"
    ),
]


def merge_loras(model: Any, specs: list[str] | None) -> list[dict[str, Any]]:
    """Merge `--lora` specs into a loaded model; their records (file, name, hash, scale). A
    LoRA that does not fit exits 2 naming `--lora`."""
    if not specs:
        return []
    from ldmkit.interop.lora import apply_loras
    from ldmkit.nn.lora import LoraError

    try:
        return [applied.to_dict() for applied in apply_loras(model, specs)]
    except LoraError as error:
        raise fail(f"--lora: {error}") from error


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


Eta = Annotated[
    float | None,
    typer.Option(
        help="Fresh noise of ddim (default 0: deterministic; 1 as DDPM), euler-a and "
        "dpm++2m-sde (default 1)"
    ),
]
Karras = Annotated[
    bool, typer.Option("--karras", help="Karras et al. 2022 sigmas (the web UIs' 'Karras')")
]
StepsOffset = Annotated[
    int | None,
    typer.Option(help="Added to 'leading' timesteps (default: the model's; Stable Diffusion 1)"),
]
Final = Annotated[
    str | None,
    typer.Option(
        help="Where the last step lands: zero (clean data) or sigma_min (the first training "
        "timestep; default: the model's convention, sigma_min for Stable Diffusion's DDIM/PLMS)"
    ),
]
Timesteps = Annotated[
    str | None,
    typer.Option(help="Explicit timesteps, decreasing and comma-separated: 999,749,499,249"),
]
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
    typer.Option(help="Denoise (blended) and decode (seamless) in latent tiles of this side"),
]
GuidanceOrDefault = Annotated[
    float | None,
    typer.Option(help="Classifier-free guidance (default 3; 1 for a model with no null condition)"),
]


def sampling_options(guidance: float | None = 3.0) -> Callable[[Callable[..., Any]], Any]:
    """A command decorator: the shared sampling options (--sampler, --steps, --guidance,
    --guidance-rescale, --eta, --spacing, --karras, --steps-offset, --final, --timesteps,
    --seed, --precision, --compile, --tile) are added to
    the command's options and reach it as one validated `SamplingOptions` in its `options`
    parameter; an invalid value exits with code 2 and a message naming the option. `guidance`
    is the command's default (None: the model's own)."""
    defaults: dict[str, tuple[Any, Any]] = {
        "sampler": (Sampler, "ddim"),
        "steps": (Steps, 50),
        "guidance": (GuidanceOrDefault if guidance is None else Guidance, guidance),
        "guidance_rescale": (GuidanceRescale, 0.0),
        "eta": (Eta, None),
        "spacing": (Spacing, None),
        "karras": (Karras, False),
        "steps_offset": (StepsOffset, None),
        "final": (Final, None),
        "timesteps": (Timesteps, None),
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
                chosen["timesteps"] = _timesteps(chosen["timesteps"])
                options = SamplingOptions(**chosen)
            except ValueError as error:
                raise fail(str(error)) from error
            return command(**kwargs, options=options)

        run.__signature__ = signature.replace(parameters=kept + added)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in kept + added}
        return run

    return decorate


def _timesteps(text: str | None) -> tuple[float | int, ...] | None:
    """--timesteps "999,749.5,499" as numbers (ints where written as ints)."""
    if text is None:
        return None
    try:
        return tuple(
            int(part) if part.strip().lstrip("-").isdigit() else float(part)
            for part in text.split(",")
        )
    except ValueError:
        raise ValueError(
            f"timesteps must be comma-separated numbers such as 999,749,499; got {text!r}"
        ) from None
