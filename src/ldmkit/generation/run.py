"""Run a `GenerationRequest` on a loaded model: each condition checked against what the model
takes (an InputError names the field and the fix), then one `sample` (or `upscale` / `inpaint`
for the spatial models). Shared by `ldmkit sample` and the server's workers."""

from pathlib import Path
from typing import Any

import torch

from ldmkit.conditioning import BBoxTokensCondition, check_layout, read_layout
from ldmkit.data.fit import image_to_tensor
from ldmkit.data.image_folder import ImageLoadError, load_image
from ldmkit.data.shapes import class_id_of
from ldmkit.evaluation.restoration import inpaint, upscale
from ldmkit.generation.request import GenerationRequest
from ldmkit.inputs import InputError
from ldmkit.pipeline import LatentDiffusion
from ldmkit.samplers.types import StepCallback


def model_inputs(model: LatentDiffusion) -> list[str]:
    """The request fields this model takes beyond the sampling options (for `GET /v1/models`
    and the web page's controls)."""
    takes = []
    if model.takes_prompts:
        takes += ["prompts", "negative_prompt"]
    if model.num_classes:
        takes.append("classes")
    if model.takes_layouts:
        takes.append("layouts")
    spatial = model.spatial
    if spatial is None:
        takes += ["init_image", "strength", "width", "height"]
    elif spatial.kind == "super_resolution":
        takes.append("low_res")
    elif spatial.kind == "inpaint":
        takes += ["init_image", "mask"]
    elif spatial.kind == "semantic":
        takes.append("semantic")
    return takes


def _cycle(values: tuple[Any, ...], n: int) -> list[Any]:
    return [values[i % len(values)] for i in range(n)]


def _image(name: str, path: str) -> torch.Tensor:
    try:
        return image_to_tensor(load_image(path))[None]
    except ImageLoadError as error:
        raise InputError(f"{name}: {error}", name) from None


def _labels(model: LatentDiffusion, request: GenerationRequest) -> torch.Tensor | None:
    classes = model.num_classes
    if not classes:
        if request.classes:
            raise InputError(
                "classes need a class-conditional model; this one takes none", "classes"
            )
        return None
    for c in request.classes:
        if c >= classes:
            raise InputError(
                f"classes: {c} is not a class of this model; use 0..{classes - 1}", "classes"
            )
    return torch.tensor(_cycle(request.classes or tuple(range(classes)), request.count))


def _layouts(model: LatentDiffusion, request: GenerationRequest) -> list[Any] | None:
    if model.takes_layouts != bool(request.layouts):
        raise InputError(
            'this model is layout-conditional: give layouts [[{"class": ..., "box": [...]}]]'
            if model.takes_layouts
            else "layouts need a layout-conditional model",
            "layouts",
        )
    if not request.layouts:
        return None
    limits = model.layout
    assert limits is not None

    def class_id(name: str) -> int:
        if isinstance(limits, BBoxTokensCondition):  # the released OpenImages model
            return limits.class_id(name)
        words = name.split()
        if len(words) != 2:
            raise ValueError(f"class {name!r}: name it as 'colour kind', e.g. 'red circle'")
        return class_id_of(words[1], words[0])

    try:
        found = [
            check_layout(read_layout(list(boxes), class_id), limits) for boxes in request.layouts
        ]
    except ValueError as error:
        raise InputError(f"layouts: {error}", "layouts") from None
    return _cycle(tuple(found), request.count)


def _latent_size(model: LatentDiffusion, request: GenerationRequest) -> tuple[int, int] | None:
    if request.width is None and request.height is None:
        return None
    f = model.autoencoder.factor
    side = model.config.latent_size * f
    width, height = request.width or side, request.height or side
    for name, value in (("width", width), ("height", height)):
        if value % f:
            raise InputError(
                f"{name} {value} is not a multiple of the first stage's f={f}; use "
                f"{value // f * f or f}",
                name,
            )
    return height // f, width // f


def _semantic(model: LatentDiffusion, path: str, n: int) -> torch.Tensor:
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    spatial = model.spatial
    if spatial is None or spatial.kind != "semantic":
        raise InputError("semantic needs a semantic synthesis model", "semantic")
    try:
        with Image.open(path) as opened:
            ids = torch.from_numpy(np.asarray(opened.convert("L"), dtype=np.int64))
    except (OSError, UnidentifiedImageError) as error:
        raise InputError(f"semantic: cannot read the map {path}: {error}", "semantic") from None
    try:
        return model.spatial_condition(semantic=ids[None]).expand(n, -1, -1, -1)
    except ValueError as error:
        raise InputError(f"semantic {path}: {error}", "semantic") from None


def check_request(model: LatentDiffusion, request: GenerationRequest) -> None:
    """Every check of the request against the model that needs no image read (what it takes,
    class ids, layouts, sizes): an InputError naming the field, before any work is queued."""
    spatial, negative = model.spatial, request.negative_prompt or None
    if model.takes_prompts != bool(request.prompts):
        raise InputError(
            "this model is text-conditional: give a prompt"
            if model.takes_prompts
            else "prompts need a text-conditional model; this one takes none",
            "prompts",
        )
    if negative is not None and not model.takes_prompts:
        raise InputError("negative_prompt needs a text-conditional model", "negative_prompt")
    kind = spatial.kind if spatial is not None else None
    needs = {"super_resolution": ("low_res",), "inpaint": ("init_image", "mask")}
    needs["semantic"] = ("semantic",)
    for name in needs.get(kind or "", ()):
        if getattr(request, name) is None:
            raise InputError(f"this is a {kind} model: give {name}", name)
    for name, wanted in (("low_res", "super_resolution"), ("mask", "inpaint")):
        if getattr(request, name) is not None and kind != wanted:
            raise InputError(f"{name} needs a {wanted} model", name)
    if request.semantic is not None and kind != "semantic":
        raise InputError("semantic needs a semantic synthesis model", "semantic")
    if negative is not None and kind in ("super_resolution", "inpaint"):
        raise InputError(f"negative_prompt is not taken by {kind} models yet", "negative_prompt")
    _labels(model, request)
    _layouts(model, request)
    _latent_size(model, request)


@torch.no_grad()
def generate(
    model: LatentDiffusion,
    request: GenerationRequest,
    callback: StepCallback | None = None,
    show_progress: bool = False,
) -> torch.Tensor:
    """The request's `count` images (B, 3, H, W) in [-1, 1]. `callback(step, steps, z)` runs
    after every step (raise to cancel)."""
    check_request(model, request)
    n, spatial, low_res = request.count, model.spatial, request.low_res
    prompts = _cycle(request.prompts, n) if request.prompts else None
    negative = request.negative_prompt or None  # "" is the plain empty prompt
    options = request.options
    if spatial is not None and spatial.kind == "super_resolution":
        assert low_res is not None
        low = _image("low_res", low_res).expand(n, -1, -1, -1)
        return upscale(model, low, options, prompts, callback)
    if spatial is not None and spatial.kind == "inpaint":
        assert request.init_image is not None and request.mask is not None
        image = _image("init_image", request.init_image)
        mask = (_image("mask", request.mask).mean(1, keepdim=True) > 0).float()
        if mask.shape[-2:] != image.shape[-2:]:
            raise InputError(
                f"mask is {mask.shape[-1]}x{mask.shape[-2]} pixels and init_image "
                f"{image.shape[-1]}x{image.shape[-2]}; give them the same size",
                "mask",
            )
        expand = (n, -1, -1, -1)
        masks = mask.expand(*expand)
        return inpaint(
            model, image.expand(*expand), masks, options, prompts=prompts, callback=callback
        )
    condition = _semantic(model, request.semantic, n) if request.semantic else None
    init_images = None
    if request.init_image is not None:
        init_images = _image("init_image", request.init_image)
        f = model.autoencoder.factor
        height, width = init_images.shape[-2:]
        if height % f or width % f:
            raise InputError(
                f"init_image {Path(request.init_image).name} is {width}x{height} pixels; each "
                f"side must be a multiple of the first stage's f={f} (e.g. crop it to "
                f"{width // f * f}x{height // f * f})",
                "init_image",
            )
        init_images = init_images.expand(n, -1, -1, -1)
    try:
        return model.sample(
            n,
            _labels(model, request),
            prompts=prompts,
            negative_prompts=[negative] * n if negative is not None else None,
            layouts=_layouts(model, request),
            condition=condition,
            options=options,
            init_images=init_images,
            strength=request.strength,
            latent_size=_latent_size(model, request),
            show_progress=show_progress,
            callback=callback,
        )
    except InputError:
        raise
    except ValueError as error:
        raise InputError(str(error)) from None
