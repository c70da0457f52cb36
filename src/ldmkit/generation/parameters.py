"""The parameters a generated image carries: ldmkit's JSON (the request, the model, which image
of the batch: `ldmkit sample --from` reruns it) and the web UIs' `parameters` text, written
together into the PNG, atomically (a reader never sees half a file)."""

import os
from pathlib import Path
from typing import Any

from PIL import Image

from ldmkit import __version__
from ldmkit.generation.request import GenerationRequest
from ldmkit.image_parameters import png_info, webui_text
from ldmkit.samplers import webui_name


def model_name(checkpoint: Path) -> str:
    """A checkpoint's name as people call it: a file's stem, a run's folder (RUN/model)."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_file():
        return checkpoint.stem
    resolved = checkpoint.resolve()
    return resolved.parent.name if resolved.name == "model" else resolved.name


def webui_parameters(
    request: GenerationRequest,
    index: int,
    size: tuple[int, int],
    name: str,
    short_hash: str,
    loras: list[dict[str, Any]] | None = None,
) -> str:
    """The web UIs' text for image `index` of the request's batch ((width, height) pixels);
    merged `loras` ({"name", "hash", "scale"}) as the web UIs write them: `<lora:NAME:SCALE>`
    after the prompt, and their hashes."""
    options = request.options
    prompt = request.prompts[index % len(request.prompts)] if request.prompts else ""
    tags = "".join(f" <lora:{lora['name']}:{lora['scale']:g}>" for lora in loras or [])
    prompt = (prompt + tags).strip()
    hashes = ", ".join(f"{lora['name']}: {lora['hash']}" for lora in loras or [])
    settings = {
        "Steps": options.steps,
        "Sampler": webui_name(options.sampler, options.karras),
        "CFG scale": options.guidance,
        "Seed": options.seed + index,
        "Size": f"{size[0]}x{size[1]}",
        "Model hash": short_hash,
        "Model": name,
        "Lora hashes": hashes or None,
        "Denoising strength": request.strength if request.init_image else None,
        "Version": f"ldmkit {__version__}",
    }
    return webui_text(prompt, request.negative_prompt, settings)


def save_image(
    image: Image.Image,
    path: Path,
    request: GenerationRequest,
    index: int | None,
    model: dict[str, str],
    extras: dict[str, Any] | None = None,
) -> None:
    """Write `image` to `path` with both parameter chunks: image `index` of the request's
    batch, or (None) a grid of the whole batch, whose web-UI text is its first image's.
    `model` is {"checkpoint", "name", "hash"}. Written to a temporary file first and renamed,
    so the path holds a whole image or none."""
    recorded = {
        "checkpoint": model["checkpoint"],
        "model_hash": model["hash"],
        **(extras or {}),
        **request.to_dict(),
        **({"index": index} if index is not None else {}),
    }
    loras = (extras or {}).get("loras")
    text = webui_parameters(request, index or 0, image.size, model["name"], model["hash"], loras)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        image.save(temporary, format="PNG", pnginfo=png_info(recorded, text))
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
