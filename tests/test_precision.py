"""Precision by name: autocast around a call, its output back in float32, clear errors."""

import pytest
import torch

from ldmkit.precision import autocast, autocast_call, check_precision

SEEN: list[tuple[bool, torch.dtype]] = []  # the autocast state each _probe call saw


def _probe(x: torch.Tensor) -> torch.Tensor:
    """x @ x under whatever autocast is active, with the autocast state recorded."""
    SEEN.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
    return x @ x


def test_autocast_call_runs_in_bf16_and_returns_float32() -> None:
    x = torch.randn(4, 4)
    out = autocast_call(_probe, torch.device("cpu"), "bf16")(x)
    assert SEEN[-1] == (True, torch.bfloat16)
    assert out.dtype == torch.float32
    assert torch.equal(out, (x.bfloat16() @ x.bfloat16()).float())  # computed in bf16
    assert autocast_call(_probe, torch.device("cpu"), "fp32") is _probe  # fp32: untouched
    with autocast(torch.device("cpu"), "fp32"):
        assert not torch.is_autocast_enabled("cpu")


def test_unknown_precision_names_the_choices() -> None:
    with pytest.raises(ValueError, match="fp32, bf16, fp16; got 'fp64'"):
        check_precision("fp64")
    with pytest.raises(ValueError, match="got 'half'"):
        autocast_call(_probe, torch.device("cpu"), "half")
