"""`--data SPEC`, the one way every train and eval command names its data.

SPEC is an image folder (`DIR`), `shards:DIR` (what `ldmkit data shards` wrote, or WebDataset
tars another tool wrote: a folder of them or a pattern, `shards:DIR/{00000..00099}.tar`),
`emoji:DIR` (the emoji set `ldmkit data prepare emoji` writes), `shapes` or `fashion-mnist`.
Only the kind and the path come from SPEC; resolution, fit, held-out fraction and seed stay as
the preset, the config or the checkpoint's record says, so a model is evaluated on the held-out
files of the split it was trained with.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ldmkit.data.config import DataConfig

BUILT_IN = ("shapes", "fashion-mnist")
SPEC_FORMS = "an image folder, shards:DIR (or shards:PATTERN), emoji:DIR, shapes or fashion-mnist"


def data_fields(spec: str, option: str = "--data") -> dict[str, Any]:
    """{"kind", "path"} for `spec`; a ValueError naming `option` and the value otherwise."""
    if spec in BUILT_IN:
        return {"kind": spec, "path": ""}
    kind, path = "folder", spec
    for prefix in ("emoji", "shards"):
        if spec.startswith(prefix + ":"):
            kind, path = prefix, spec[len(prefix) + 1 :]
    folder = Path(path)
    if kind == "shards" and path and not folder.exists():  # a pattern of WebDataset tars
        from ldmkit.data.shard_index import find_tars

        find_tars(path)  # a ValueError naming the pattern when it names none
        return {"kind": kind, "path": path}
    if not path or not folder.exists():
        raise ValueError(
            f"{option} {spec!r}: no such folder; give {SPEC_FORMS}"
            + ("" if path else f" ({kind}:DIR needs the folder after the colon)")
        )
    if not folder.is_dir():
        raise ValueError(f"{option} {spec!r} is a file; give the folder that holds the images")
    return {"kind": kind, "path": str(folder)}


def with_data(base: DataConfig, spec: str | None, option: str = "--data") -> DataConfig:
    """`base` with the kind and path of `spec` (unchanged when `spec` is None)."""
    if spec is None:
        return base
    return dataclasses.replace(base, **data_fields(spec, option))
