"""Numeric precision by name: "fp32", "bf16" (bfloat16 autocast) or "fp16" (float16 autocast)."""

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch

Precision = Literal["fp32", "bf16", "fp16"]
DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def check_precision(precision: str) -> None:
    """Raise a ValueError naming the valid choices when `precision` is not one of them."""
    if precision not in DTYPES:
        raise ValueError(f"precision must be one of {', '.join(DTYPES)}; got {precision!r}")


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
