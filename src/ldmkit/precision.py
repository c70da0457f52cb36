"""Numeric precision by name: "fp32", "bf16" (bfloat16 autocast) or "fp16" (float16 autocast);
"auto" picks the fastest one the device runs natively.

x86 CPUs without bfloat16 / float16 instructions (AVX-512 BF16 or AMX; AVX-512 FP16 or AMX-FP16)
run autocast's half precision through slow fallback kernels (bf16 sampling was 29x slower than
fp32 on a 2-core AVX2 EPYC), so asking for one there warns, and "auto" keeps fp32.
"""

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch

from ldmkit.hardware import cpu_capabilities

Precision = Literal["fp32", "bf16", "fp16", "auto"]  # auto: resolve_precision
DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


# The CPU instruction sets that run each half precision natively (names of
# `torch.cpu.get_capabilities()`); without any of them oneDNN falls back to slow kernels.
_CPU_INSTRUCTIONS = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16")}


def check_precision(precision: str) -> None:
    """Raise a ValueError naming the valid choices when `precision` is not one of them."""
    if precision not in DTYPES:
        raise ValueError(f"precision must be one of {', '.join(DTYPES)}; got {precision!r}")


def native_precision(device: torch.device, precision: str) -> bool | None:
    """Whether `device` computes `precision` in hardware: True, False, or None when unknown
    (CPUs other than x86, devices other than CPU and CUDA). fp32 is always native."""
    check_precision(precision)
    if precision == "fp32":
        return True
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported() if precision == "bf16" else True
    if device.type != "cpu":
        return None
    capabilities = cpu_capabilities()
    if capabilities.get("architecture") not in ("x86_64", "x86"):
        return None
    return any(capabilities.get(name, False) for name in _CPU_INSTRUCTIONS[precision])


def resolve_precision(precision: str, device: torch.device) -> str:
    """`precision` for `device`: "auto" becomes bf16 where the device runs it natively (else fp16
    on CUDA, else fp32); an explicit half precision the device only emulates is kept, with a
    RuntimeWarning naming the cost and the fix. Unknown names raise a ValueError."""
    if precision == "auto":
        if native_precision(device, "bf16"):
            return "bf16"
        return "fp16" if device.type == "cuda" else "fp32"
    if precision not in DTYPES:
        raise ValueError(f"precision must be one of auto, {', '.join(DTYPES)}; got {precision!r}")
    if native_precision(device, precision) is False:
        _warn_emulated(precision)
    return precision


@functools.cache  # once per process and precision
def _warn_emulated(precision: str) -> None:
    name = cpu_capabilities().get("cpu_name") or "unknown"
    warnings.warn(
        f"{precision} on this CPU ({name}) is emulated: it has none of "
        f"{', '.join(_CPU_INSTRUCTIONS[precision])}, so autocast runs it through fallback kernels, "
        "8-30x slower than fp32; use fp32 (or auto) on this machine",
        RuntimeWarning,
        stacklevel=3,
    )


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Mixed precision for forward passes: bf16 or fp16 autocast, or nothing for fp32."""
    check_precision(precision)
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=DTYPES[precision]):
        yield


def autocast_call(
    function: Callable[..., torch.Tensor], device: torch.device, precision: str
) -> Callable[..., torch.Tensor]:
    """`function` run under `autocast(device, precision)`, its output cast back to float32 (so
    the arithmetic around it, a sampler's update, stays in full precision)."""
    check_precision(precision)
    if precision == "fp32":
        return function

    def call(*args: Any, **kwargs: Any) -> torch.Tensor:
        with autocast(device, precision):
            return function(*args, **kwargs).float()

    return call
