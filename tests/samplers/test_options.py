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
        ({"sampler": "euler"}, "sampler must be one of ddpm, ddim, plms, dpm\\+\\+2m; got 'euler'"),
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
        ({"sampler": "plms", "eta": 0.5}, "eta is an option of ddim, not of plms"),
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
