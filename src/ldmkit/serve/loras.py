"""The LoRAs a server offers (`ldmkit serve --lora-dir DIR`): each `DIR/NAME.safetensors` by its
name. A job asks for them with `"loras": [{"name": NAME, "scale": 0.8}]`, or as the web UIs
write it, `<lora:NAME:0.8>` in the prompt (taken out of the text the model reads). They are
merged for that job alone (`interop.lora.loras_merged`), and its images record them."""

from __future__ import annotations

import contextlib
import math
import re
from pathlib import Path
from typing import Any

from ldmkit.inputs import InputError

TAG = re.compile(r"<lora:([^:>]*)(?::([^>]*))?>", re.IGNORECASE)
SUFFIX = ".safetensors"

Asked = list[tuple[str, float]]  # (name, scale) in the order asked


class LoraLibrary:
    """The LoRA files in `folder` (None: the server offers none), listed afresh when asked, so a
    file copied in while the server runs is offered at once."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def names(self) -> list[str]:
        """The names offered, sorted."""
        if self.folder is None or not self.folder.is_dir():
            return []
        return sorted(p.name.removesuffix(SUFFIX) for p in self.folder.glob("*" + SUFFIX))

    def path(self, name: str) -> Path:
        """The file of LoRA `name` (one of `names()`)."""
        assert self.folder is not None
        return self.folder / (name + SUFFIX)

    def asked(
        self, given: Any, prompts: list[str], negative: str | None
    ) -> tuple[Asked, list[str], str | None]:
        """The LoRAs a job's `loras` field and prompt tags ask for, and the prompts without the
        tags; an InputError naming `loras` (or `prompts`) for a name not offered, a bad scale
        or one LoRA asked at two scales."""
        asked: dict[str, float] = {}
        for name, scale in self._listed(given) + _tags(prompts) + _tags([negative or ""]):
            if asked.get(name, scale) != scale:
                raise InputError(
                    f"LoRA {name!r} is asked at scales {asked[name]} and {scale}", "loras"
                )
            asked[name] = scale
        offered = self.names()
        for name in asked:
            if name not in offered:
                where = (
                    f"the LoRAs offered are {offered}"
                    if offered
                    else "this server offers none (start it with --lora-dir DIR)"
                )
                raise InputError(f"no LoRA {name!r}: {where}", "loras")
        cleaned = [_untagged(p) for p in prompts]
        return list(asked.items()), cleaned, (_untagged(negative) if negative else negative)

    def _listed(self, given: Any) -> Asked:
        if given is None:
            return []
        shape = 'loras must be a list of {"name": NAME, "scale": number}'
        if not isinstance(given, list):
            raise InputError(f"{shape}; got {given!r}", "loras")
        listed: Asked = []
        for entry in given:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise InputError(f"{shape}; got {entry!r}", "loras")
            listed.append((entry["name"], _scale(entry.get("scale", 1.0), entry["name"])))
        return listed


def _scale(value: Any, name: str) -> float:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"the scale of LoRA {name!r} must be a number; got {value!r}", "loras")
    return float(value)


def _tags(prompts: list[str]) -> Asked:
    return [
        (match.group(1), _scale(match.group(2) or 1.0, match.group(1)))
        for prompt in prompts
        for match in TAG.finditer(prompt)
    ]


def _untagged(prompt: str) -> str:
    return " ".join(TAG.sub(" ", prompt).split()) if TAG.search(prompt) else prompt
