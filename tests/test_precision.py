"""Precision by name: autocast around a call, its output back in float32, clear errors, and
`auto` / the emulation warning by what the CPU reports."""

import warnings

import pytest
import torch

from ldmkit import precision
from ldmkit.precision import (
    autocast,
    autocast_call,
    check_precision,
    native_precision,
    resolve_precision,
)

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


@pytest.fixture
def cpu_with(monkeypatch: pytest.MonkeyPatch):
    """Pretend the CPU reports the given capabilities (torch.cpu.get_capabilities names)."""

    def pretend(**capabilities: object) -> None:
        monkeypatch.setattr(precision, "cpu_capabilities", lambda: dict(capabilities))
        precision._warn_emulated.cache_clear()

    yield pretend
    precision._warn_emulated.cache_clear()


def test_auto_picks_bf16_only_where_the_cpu_runs_it_natively(cpu_with) -> None:
    cpu = torch.device("cpu")
    cpu_with(architecture="x86_64", avx2=True, avx512_bf16=False, amx_bf16=False)
    assert native_precision(cpu, "bf16") is False and native_precision(cpu, "fp32") is True
    assert resolve_precision("auto", cpu) == "fp32"
    cpu_with(architecture="x86_64", avx512_bf16=True)
    assert native_precision(cpu, "bf16") is True and native_precision(cpu, "fp16") is False
    assert resolve_precision("auto", cpu) == "bf16"
    cpu_with(architecture="x86_64", amx_bf16=True, amx_fp16=True)
    assert resolve_precision("auto", cpu) == "bf16" and native_precision(cpu, "fp16") is True
    cpu_with(architecture="aarch64")  # no report of its half-precision units: unknown
    assert native_precision(cpu, "bf16") is None and resolve_precision("auto", cpu) == "fp32"


def test_emulated_half_precision_is_kept_with_one_warning_naming_the_fix(cpu_with) -> None:
    cpu = torch.device("cpu")
    cpu_with(architecture="x86_64", cpu_name="Test EPYC", avx2=True)
    with pytest.warns(
        RuntimeWarning, match=r"bf16 on this CPU \(Test EPYC\) is emulated.*use fp32"
    ):
        assert resolve_precision("bf16", cpu) == "bf16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16", cpu) == "bf16"  # once per process, not per call
        assert resolve_precision("fp32", cpu) == "fp32"
        cpu_with(architecture="x86_64", avx512_bf16=True)
        assert resolve_precision("bf16", cpu) == "bf16"  # native: silent
    with pytest.raises(ValueError, match="one of auto, fp32, bf16, fp16; got 'half'"):
        resolve_precision("half", cpu)


def test_this_machine_report_is_consistent() -> None:
    """The real capability report: `auto` agrees with what `native_precision` says."""
    cpu = torch.device("cpu")
    native = native_precision(cpu, "bf16")
    assert resolve_precision("auto", cpu) == ("bf16" if native else "fp32")
