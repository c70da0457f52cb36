"""Tensors of a `.safetensors` file read at another floating dtype, one at a time, through plain
file reads rather than the file's memory map.

Casting memory-mapped float32 weights to bf16 reads every page of them through the mapping, and
those pages count as the process's resident memory until the mapping closes: an SD 1.5 file held
in bf16 peaked above its float32 size. Read with `readinto`, the float32 bytes pass through the
page cache (the kernel's, not the process's) and one tensor-sized buffer, so the process holds
the half-precision weights and at most one float32 tensor besides.
"""

import json
import struct
from collections.abc import Iterable
from pathlib import Path

import torch

# safetensors' dtype names (its format specification) -> torch dtypes.
DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def read_cast(path: Path, names: Iterable[str], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """{name: tensor} for `names` in the safetensors file `path`, floating tensors cast to
    `dtype` (others as stored), each read with a plain file read."""
    out: dict[str, torch.Tensor] = {}
    with Path(path).open("rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(length))
        base = 8 + length
        for name in names:
            entry = header[name]
            stored = DTYPES[entry["dtype"]]
            start, end = entry["data_offsets"]
            buffer = torch.empty(entry["shape"], dtype=stored)
            view = buffer.view(-1).view(torch.uint8).numpy() if buffer.numel() else None
            if view is not None:
                file.seek(base + start)
                if file.readinto(memoryview(view)) != end - start:
                    raise OSError(f"{path}: {name} is cut short")
            out[name] = buffer.to(dtype) if buffer.is_floating_point() else buffer
    return out
