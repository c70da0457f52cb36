"""One sampling option group on every command that samples, validated before any work."""

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from ldmkit.cli import app
from ldmkit.cli.common import SAMPLER_NAMES
from ldmkit.samplers import SAMPLERS

SAMPLING = ["--sampler", "--steps", "--guidance", "--eta", "--spacing", "--seed", "--precision",
            "--compile", "--tile", "--karras", "--steps-offset", "--final",
            "--timesteps"]  # fmt: skip
COMMANDS = [
    ["sample"],
    ["upscale"],
    ["inpaint"],
    ["eval", "checkpoint"],
    ["eval", "fid"],
    ["eval", "adherence"],
    ["eval", "layout"],
    ["eval", "relations"],
    ["eval", "spatial"],
]


def _options(path: list[str]) -> set[str]:
    command = get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return {flag for param in command.params for flag in param.opts}


def test_the_help_names_the_registered_samplers() -> None:
    assert tuple(SAMPLERS) == SAMPLER_NAMES


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_sampling_command_has_the_whole_group(path: list[str]) -> None:
    assert set(SAMPLING) <= _options(path)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--guidance", "nan"], "guidance must be a finite number"),
        (["--guidance", "inf"], "guidance must be a finite number"),
        (["--steps", "0"], "steps must be an integer >= 1"),
        (["--sampler", "plms", "--eta", "0.5"], "eta is an option of ddim"),
        (["--precision", "half"], "precision must be one of"),
        (["--tile", "-4"], "tile must be an integer >= 1"),
        (["--guidance-rescale", "-0.1"], "guidance_rescale must be a number in [0, 1]"),
        (["--sampler", "LMS Karras"], "a web-UI name such as 'DPM++ 2M Karras'"),
        (["--final", "one"], "final must be one of zero, sigma_min"),
        (["--timesteps", "999,x"], "timesteps must be comma-separated numbers"),
        (["--karras", "--spacing", "leading"], "leave spacing and timesteps unset"),
        (["--steps-offset", "-1"], "steps_offset must be an integer >= 0"),
    ],
)
def test_bad_sampling_values_exit_2_before_any_work(flags: list[str], named: str) -> None:
    # The checkpoint does not exist: the options are refused before anything is loaded.
    result = CliRunner().invoke(app, ["sample", "--checkpoint", "/nonexistent", *flags])
    assert result.exit_code == 2, result.output
    assert named in result.output and "Traceback" not in result.output
