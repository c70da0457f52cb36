"""The input rules every entry point shares (`ldmkit.inputs`): each failure names the input,
the value and the fix."""

import math
import os
from pathlib import Path

import pytest

from ldmkit.inputs import (
    InputError,
    check_count,
    check_fraction,
    check_output_image,
    check_side,
)


@pytest.mark.parametrize("value", [0, -2, 2.5, True, "3", None])
def test_counts_are_integers_of_at_least_one(value: object) -> None:
    with pytest.raises(InputError, match=rf"--n must be an integer >= 1; got {value!r}"):
        check_count("--n", value)


def test_good_values_pass_through(tmp_path: Path) -> None:
    assert check_count("--n", 3) == 3 and check_count("--k", 0, minimum=0) == 0
    assert check_side("--tile", None) is None and check_side("--tile", 8) == 8
    assert check_fraction("--strength", 1) == 1.0
    assert check_fraction("--phi", 0, low_open=False) == 0.0
    out = check_output_image("--out", tmp_path / "new" / "a.PNG")
    assert out.parent.is_dir()  # made, so that the write after the work cannot fail there


@pytest.mark.parametrize("value", [0, -4])
def test_a_side_of_zero_is_not_a_silent_default(value: int) -> None:
    with pytest.raises(InputError, match="leave it out for the default"):
        check_side("--latent-size", value)


@pytest.mark.parametrize("value", [0.0, 1.5, math.nan, math.inf, -0.1])
def test_fractions(value: float) -> None:
    with pytest.raises(InputError, match=r"--strength must be a number in \(0, 1\]"):
        check_fraction("--strength", value)


def test_output_images_are_checked_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.jpg2 is not an image format this writes"):
        check_output_image("--out", tmp_path / "x.jpg2")
    folder = tmp_path / "folder.png"
    folder.mkdir()
    with pytest.raises(InputError, match="is a folder; name the image file"):
        check_output_image("--out", folder)
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if not os.access(locked, os.W_OK):  # root may write anywhere
            with pytest.raises(InputError, match="is not writable; choose another"):
                check_output_image("--out", locked / "a.png")
    finally:
        os.chmod(locked, 0o700)
