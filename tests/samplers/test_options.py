"""SamplingOptions: every user choice about sampling validated in one place, with messages that
name the option, the value and what is valid."""

import math

import pytest

from ldmkit.samplers import SAMPLERS, SamplingOptions


def test_defaults_and_what_the_sampler_receives() -> None:
    options = SamplingOptions()
    assert (options.sampler, options.steps, options.guidance, options.seed) == ("ddim", 50, None, 0)
    assert options.sampler_options() == {}  # the sampler's own spacing, no eta
    chosen = SamplingOptions("ddim", 10, 2.0, eta=0.5, spacing="trailing")
    assert chosen.sampler_options() == {"eta": 0.5, "spacing": "trailing"}
    assert chosen.replace(seed=3).seed == 3 and chosen.seed == 0  # frozen: a new copy
    assert chosen.to_dict()["eta"] == 0.5


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sampler": "LMS Karras"}, "sampler must be one of ddpm, ddim, .*; got 'LMS Karras'"),
        ({"steps": 0}, "steps must be an integer >= 1; got 0"),
        ({"steps": -5}, "steps must be an integer >= 1; got -5"),
        ({"steps": 2.5}, "steps must be an integer"),
        ({"steps": True}, "steps must be an integer"),
        ({"guidance": math.nan}, "guidance must be a finite number >= 0"),
        ({"guidance": math.inf}, "guidance must be a finite number >= 0"),
        ({"guidance": -1.0}, "guidance must be a finite number >= 0"),
        ({"eta": math.nan}, "eta must be a finite number >= 0"),
        ({"guidance_rescale": 1.5}, r"guidance_rescale must be a number in \[0, 1\]"),
        ({"guidance_rescale": math.nan}, r"guidance_rescale must be a number in \[0, 1\]"),
        (
            {"sampler": "plms", "eta": 0.5},
            "eta is an option of ddim, dpm\\+\\+2m-sde, euler-a, not",
        ),
        ({"karras": True, "spacing": "leading"}, "leave spacing and timesteps unset"),
        ({"steps_offset": -1}, "steps_offset must be an integer >= 0; got -1"),
        ({"final": "one"}, "final must be one of zero, sigma_min; got 'one'"),
        ({"timesteps": (900, "x")}, "timesteps must be numbers >= 0"),
        ({"spacing": "cosine"}, "spacing must be one of leading, trailing, linspace, logsnr"),
        ({"seed": -1}, "seed must be an integer >= 0; got -1"),
        ({"precision": "int8"}, "precision must be one of auto, fp32, bf16, fp16; got 'int8'"),
        ({"tile": 0}, "tile must be an integer >= 1; got 0"),
    ],
)
def test_bad_values_name_the_option_and_the_fix(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SamplingOptions(**changes)
    with pytest.raises(ValueError, match=message):  # replace() validates too
        SamplingOptions().replace(**changes)


def test_every_registered_sampler_is_accepted() -> None:
    for name in SAMPLERS:
        assert SamplingOptions(name).sampler == name


@pytest.mark.parametrize(
    ("name", "sampler", "karras"),
    [
        ("DPM++ 2M Karras", "dpm++2m", True),
        ("DPM++ 2M SDE Karras", "dpm++2m-sde", True),
        ("dpm++  2m sde", "dpm++2m-sde", False),
        ("Euler a", "euler-a", False),
        ("Euler", "euler", False),
        ("Heun", "heun", False),
        ("DDIM", "ddim", False),
        ("EulerDiscreteScheduler", "euler", False),
        ("DPMSolverMultistepScheduler", "dpm++2m", False),
    ],
)
def test_other_tools_sampler_names_are_read_as_ldmkits(name: str, sampler: str, karras: bool):
    options = SamplingOptions(name)
    assert (options.sampler, options.karras) == (sampler, karras)
    assert options.sampler_options() == ({"karras": True} if karras else {})


def test_grid_conventions_reach_the_sampler() -> None:
    options = SamplingOptions("ddim", spacing="leading", steps_offset=1, final="sigma_min")
    assert options.sampler_options() == {
        "spacing": "leading",
        "steps_offset": 1,
        "final": "sigma_min",
    }
    explicit = SamplingOptions("euler", timesteps=[999, 500.5, 20])
    assert explicit.steps == 3 and explicit.timesteps == (999, 500.5, 20)
    assert SamplingOptions("euler-a", eta=0.5).sampler_options() == {"eta": 0.5}
