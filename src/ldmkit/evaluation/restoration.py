"""Super-resolution and inpainting with a spatially conditioned LDM, and their measurement on
held-out ground truth: PSNR/SSIM against bicubic upsampling (x4), PSNR inside the hole and on
the hole's border (seams) for inpainting."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ldmkit.conditioning import bicubic_degrade, bicubic_upsample, random_masks
from ldmkit.evaluation.batched import (
    SPATIAL_OPTIONS,
    first_items,
    options_record,
    save_rows,
    timed_batches,
)
from ldmkit.metrics.image_quality import masked_psnr, psnr, ssim
from ldmkit.pipeline import LatentDiffusion
from ldmkit.samplers import SamplingOptions, StepCallback

# Held-out hole masks use generators seeded from here, far from any training step's seeds.
MASK_SEED = 1_000_000_007


def _kind(model: LatentDiffusion, kind: str) -> None:
    spatial = model.spatial
    if spatial is None or spatial.kind != kind:
        have = spatial.kind if spatial else "no spatial condition"
        raise ValueError(f"this needs a {kind} model; the checkpoint has {have}")


def default_tile(model: LatentDiffusion, latent_side: int) -> int | None:
    """Tile side for a latent of `latent_side`: the training side when the latent is larger."""
    return model.config.latent_size if latent_side > model.config.latent_size else None


@torch.no_grad()
def upscale(
    model: LatentDiffusion,
    low_res: torch.Tensor,
    options: SamplingOptions = SPATIAL_OPTIONS,
    prompts: Sequence[str] | None = None,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Super-resolve `low_res` (B, 3, h, w) in [-1, 1] by the model's factor; larger than the
    training size, the latent is denoised and decoded in blended tiles (`options.tile` latent
    pixels, default the training side). A text-conditioned model (Stable Diffusion's x4
    upscaler) takes `prompts`; a noise-augmented one draws that noise from `options.seed`."""
    _kind(model, "super_resolution")
    device = model.device
    generator = torch.Generator().manual_seed(options.seed)
    condition = model.spatial_condition(low_res=low_res.to(device), generator=generator)
    tile = options.tile or default_tile(model, max(condition.shape[-2:]))
    if prompts is not None and len(prompts) == 1:
        prompts = list(prompts) * len(low_res)
    return model.sample(
        len(low_res),
        prompts=prompts,
        condition=condition,
        options=options.replace(tile=tile),
        callback=callback,
    )


@torch.no_grad()
def inpaint(
    model: LatentDiffusion,
    images: torch.Tensor,
    masks: torch.Tensor,
    options: SamplingOptions = SPATIAL_OPTIONS,
    paste: bool = True,
    prompts: Sequence[str] | None = None,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Fill the holes (`masks` (B, 1, H, W), 1 = fill) of `images` in [-1, 1]; with `paste` the
    known pixels are copied back exactly and only the hole comes from the model. Larger than
    the training size, in tiles as `upscale`. A text-conditioned model takes `prompts` (one
    per image, or one for all)."""
    _kind(model, "inpaint")
    device = model.device
    images, masks = images.to(device), masks.to(device, images.dtype)
    condition = model.spatial_condition(image=images, mask=masks)
    tile = options.tile or default_tile(model, max(condition.shape[-2:]))
    if prompts is not None and len(prompts) == 1:
        prompts = list(prompts) * len(images)
    out = model.sample(
        len(images),
        prompts=prompts,
        condition=condition,
        options=options.replace(tile=tile),
        callback=callback,
    )
    return masks * out + (1 - masks) * images if paste else out


def border(masks: torch.Tensor, width: int = 2) -> torch.Tensor:
    """Pixels within `width` of a hole's edge, on either side (where a seam would show)."""
    k = 2 * width + 1
    dilated = F.max_pool2d(masks, k, stride=1, padding=width)
    eroded = -F.max_pool2d(-masks, k, stride=1, padding=width)
    return dilated - eroded


def _summary(values: torch.Tensor) -> dict[str, float]:
    return {"mean": float(values.mean()), "std": float(values.std()) if len(values) > 1 else 0.0}


@torch.no_grad()
def evaluate_super_resolution(
    model: LatentDiffusion,
    dataset: Dataset[dict[str, Any]],
    n: int,
    options: SamplingOptions = SPATIAL_OPTIONS,
    batch_size: int = 32,
    grid: Path | None = None,
) -> dict[str, Any]:
    """PSNR/SSIM of the model's x`factor` output and of bicubic upsampling against the originals
    of the first `n` items (the held-out images, bicubic-degraded as in training), and images/s.
    The first stage's own reconstruction PSNR is the ceiling the model can reach."""
    _kind(model, "super_resolution")
    options = model.resolve(options)
    assert model.spatial is not None
    factor = model.spatial.factor
    images = first_items(dataset, n)["image"]
    out, elapsed = timed_batches(
        len(images),
        batch_size,
        "super-resolution",
        lambda part, start: upscale(
            model,
            bicubic_degrade(images[part], factor),
            options.replace(seed=options.seed + start),
        ),
    )
    bicubic = bicubic_upsample(bicubic_degrade(images, factor), factor)
    device = model.device
    ceiling = torch.cat(
        [
            model.decode(model.encode(images[s : s + batch_size].to(device))).cpu()
            for s in range(0, len(images), batch_size)
        ]
    )
    if grid is not None:
        nearest = bicubic_degrade(images[:8], factor).repeat_interleave(factor, -2)
        save_rows(grid, [nearest.repeat_interleave(factor, -1), bicubic, out, images])
    return {
        "task": f"super-resolution x{factor}",
        "n": len(images),
        **options_record(options),
        "ldm": {"psnr": _summary(psnr(out, images)), "ssim": _summary(ssim(out, images))},
        "bicubic": {
            "psnr": _summary(psnr(bicubic, images)),
            "ssim": _summary(ssim(bicubic, images)),
        },
        "autoencoder_ceiling_psnr": float(psnr(ceiling, images).mean()),
        "images_per_s": len(images) / elapsed,
    }


@torch.no_grad()
def evaluate_inpainting(
    model: LatentDiffusion,
    dataset: Dataset[dict[str, Any]],
    n: int,
    options: SamplingOptions = SPATIAL_OPTIONS,
    batch_size: int = 32,
    grid: Path | None = None,
) -> dict[str, Any]:
    """PSNR inside the hole and on its 2-pixel border (a seam shows there) against the originals
    of the first `n` items, for the model (known pixels pasted back) and for filling the hole
    with the mean colour of the known pixels; held-out masks from fixed seeds."""
    _kind(model, "inpaint")
    options = model.resolve(options)
    images = first_items(dataset, n)["image"]
    generators = [torch.Generator().manual_seed(MASK_SEED + i) for i in range(len(images))]
    masks = random_masks(generators, images.shape[-1])
    out, elapsed = timed_batches(
        len(images),
        batch_size,
        "inpainting",
        lambda part, start: inpaint(
            model, images[part], masks[part], options.replace(seed=options.seed + start)
        ),
    )
    known = 1 - masks
    mean = (images * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True)
    mean_fill = masks * mean + known * images
    edge = border(masks)
    if grid is not None:
        save_rows(grid, [images * known, out, images])
    return {
        "task": "inpainting",
        "n": len(images),
        **options_record(options),
        "hole_fraction": float(masks.mean()),
        "ldm": {
            "hole_psnr": _summary(masked_psnr(out, images, masks)),
            "border_psnr": _summary(masked_psnr(out, images, edge)),
        },
        "mean_fill": {
            "hole_psnr": _summary(masked_psnr(mean_fill, images, masks)),
            "border_psnr": _summary(masked_psnr(mean_fill, images, edge)),
        },
        "images_per_s": len(images) / elapsed,
    }
