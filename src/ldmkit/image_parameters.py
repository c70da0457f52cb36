"""The generation parameters an image carries in its PNG text chunks: ldmkit's full options as
JSON (the `ldmkit` chunk, what `ldmkit sample --from` reruns) and the `parameters` text the
Stable Diffusion web UIs write and read (prompt, negative prompt, then "Steps: 20, Sampler:
..."), so an image from here opens with its settings in those tools. Written by `ldmkit sample`
and `ldmkit serve`, read by `ldmkit inspect`. No torch: the CLI reads before it loads a model."""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from ldmkit.inputs import InputError

JSON_KEY = "ldmkit"
WEBUI_KEY = "parameters"


def webui_text(
    prompt: str,
    negative_prompt: str | None,
    settings: Mapping[str, Any],
) -> str:
    """The web UIs' `parameters` text: the prompt, "Negative prompt: ..." when there is one,
    then the settings as "Key: value" pairs on one line (values holding a comma are quoted)."""

    def value(v: Any) -> str:
        text = str(v)
        return json.dumps(text) if "," in text or ":" in text else text

    lines = [prompt]
    if negative_prompt:
        lines.append(f"Negative prompt: {negative_prompt}")
    lines.append(", ".join(f"{k}: {value(v)}" for k, v in settings.items() if v is not None))
    return "\n".join(lines)


def png_info(parameters: Mapping[str, Any], webui: str | None = None) -> PngInfo:
    """PNG text chunks holding `parameters` as JSON and, where given, the web UIs' text."""
    info = PngInfo()
    info.add_text(JSON_KEY, json.dumps(parameters))
    if webui is not None:
        info.add_text(WEBUI_KEY, webui)
    return info


def read_parameters(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(ldmkit's JSON parameters, the web UIs' text) of an image; either may be None. An
    unreadable file, or one with neither, is an InputError that says so."""
    try:
        with Image.open(path) as image:
            text = dict(getattr(image, "text", {}) or {})
    except (OSError, UnidentifiedImageError) as error:
        raise InputError(f"{path}: cannot read it as an image ({error})") from error
    recorded = None
    if JSON_KEY in text:
        try:
            recorded = json.loads(text[JSON_KEY])
        except json.JSONDecodeError as error:
            raise InputError(f"{path}: its {JSON_KEY!r} text chunk is not JSON ({error})") from None
        if not isinstance(recorded, dict):
            raise InputError(f"{path}: its {JSON_KEY!r} text chunk is not a JSON object")
    webui = text.get(WEBUI_KEY)
    if recorded is None and webui is None:
        raise InputError(
            f"{path} carries no generation parameters (no {JSON_KEY!r} or {WEBUI_KEY!r} PNG "
            "text chunk); it was not written by ldmkit or a Stable Diffusion web UI, or its "
            "metadata was stripped"
        )
    return recorded, webui
