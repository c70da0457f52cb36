"""What this machine computes with: the CPU's instruction sets and the accelerators torch sees.

Speed figures depend on them (a CPU with AVX-512 BF16 runs bf16 convolutions at twice its fp32
rate; one without emulates bf16 many times slower), so benchmarks print `machine_report()` next
to their timings and `ldmkit info` prints it for bug reports.
"""

import functools
import os
import platform
from typing import Any

import torch


@functools.cache
def cpu_capabilities() -> dict[str, Any]:
    """torch's report of the CPU (`torch.cpu.get_capabilities()`: instruction sets by name,
    `cpu_name`, `architecture`, core counts); empty where torch cannot tell."""
    try:
        return dict(torch.cpu.get_capabilities())
    except (AttributeError, RuntimeError):  # older torch: no capability report
        return {}


# The instruction sets worth naming in a report, in order: vector width, then half precision.
_NOTABLE = (
    "avx2",
    "avx512_f",
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "amx_fp16",
    "avx_vnni",
    "avx512_vnni",
)


def machine_report() -> dict[str, Any]:
    """torch version, the CPU (name, vector capability, notable instruction sets, cores and
    torch's threads) and each CUDA device (name, memory, bf16 support); JSON-ready."""
    cpu = cpu_capabilities()
    report: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": {
            "name": cpu.get("cpu_name") or platform.processor() or "unknown",
            "architecture": cpu.get("architecture") or platform.machine(),
            "capability": torch.backends.cpu.get_cpu_capability(),
            "instructions": [name for name in _NOTABLE if cpu.get(name)],
            "physical_cores": cpu.get("num_physical_cores"),
            "logical_cores": cpu.get("num_logical_cores", os.cpu_count()),
            "torch_threads": torch.get_num_threads(),
        },
        "cuda": [],
        "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
    }
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            report["cuda"].append(
                {
                    "name": properties.name,
                    "memory_gib": round(properties.total_memory / 2**30, 1),
                    "capability": f"{properties.major}.{properties.minor}",
                }
            )
        report["cuda_bf16"] = torch.cuda.is_bf16_supported()
    return report


def select_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA, then MPS, then CPU; anything else is passed to torch.device."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise DeviceError(
            f"device {name!r} is not a device name; use auto, cpu, cuda, cuda:N or mps"
        ) from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"device {name!r} asked for, but CUDA is not available here; use --device cpu (or "
            "auto; in a config, run.device)"
        )
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    if device.type == "cuda" and device.index is not None and device.index >= count:
        raise DeviceError(f"device {name!r} asked for, but this machine has {count} CUDA devices")
    if device.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise DeviceError(f"device {name!r} asked for, but MPS is not available here")
    return device


class DeviceError(ValueError):
    """The device asked for does not exist on this machine; the message says what does."""
