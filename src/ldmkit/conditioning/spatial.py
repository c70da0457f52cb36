"""Spatially aligned conditions, concatenated with z_t along channels (Rombach et al. 2022, 3.3):
the low-resolution image for super-resolution (LDM-SR, 4.4), the masked image plus its mask for
inpainting (4.5) and the one-hot segmentation map for semantic synthesis (4.3.2). This file
holds the degradations, masks and maps, which need no network; the pipeline encodes the masked
image with the first stage."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

SpatialKind = Literal["super_resolution", "inpaint", "semantic"]
KINDS = ("super_resolution", "inpaint", "semantic")
# How the inpainting map is laid out: ldmkit's [encoded known part, mask (area-resized)];
# Stable Diffusion's inpainting models' [mask (nearest-resized), encoded known part], the
# known part being image * (mask < 0.5); the CompVis zoo's inpainting model's [encoded known
# part, mask (nearest-resized)], the known part being image * (1 - (mask >= 0.5)).
InpaintLayout = Literal["ldmkit", "stable_diffusion", "compvis"]
INPAINT_LAYOUTS = ("ldmkit", "stable_diffusion", "compvis")


@dataclass(frozen=True)
class SpatialConfig:
    """Which spatial condition is concatenated with the latent, and its parameters."""

    kind: SpatialKind = "super_resolution"
    # super_resolution: output side / input side; the low-resolution image is resized to the
    # latent's side when they differ (with an f=4 first stage and factor 4 they match).
    factor: int = 4
    # Channels of the images (3 RGB; the pixel first stage may use others).
    image_channels: int = 3
    # semantic: map classes including background 0 (shapes: 1 + 30 kind x colour classes).
    classes: int = 31
    # semantic, the CompVis landscapes models' `SpatialRescaler`: the one-hot map halved by
    # bilinear interpolation to the latent's side, then mapped by a learned 1x1 convolution (no
    # bias) to this many channels; 0 = ldmkit's one-hot map, area-resized.
    rescaler_channels: int = 0
    # inpaint: the map's layout (`InpaintLayout`).
    layout: InpaintLayout = "ldmkit"
    # super_resolution with noise augmentation (Stable Diffusion's x4 upscaler): the
    # low-resolution image is noised to `noise_level` of a schedule (LDM's sqrt-linear,
    # noise_beta_start..noise_beta_end over noise_levels steps) and the level reaches the UNet
    # as its class label (`y`; its class table has noise_levels rows). 0 = no augmentation.
    noise_levels: int = 0
    noise_level: int = 20
    max_noise_level: int = 350
    noise_beta_start: float = 0.0001
    noise_beta_end: float = 0.02

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"spatial.kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if self.factor < 2:
            raise ValueError(f"spatial.factor must be >= 2, got {self.factor}")
        if self.classes < 2:
            raise ValueError(f"spatial.classes must be >= 2, got {self.classes}")
        if self.rescaler_channels < 0:
            raise ValueError(
                f"spatial.rescaler_channels must be >= 0, got {self.rescaler_channels}"
            )
        if self.noise_levels and not 0 <= self.noise_level <= self.max_noise_level:
            raise ValueError(
                f"spatial.noise_level must lie in [0, {self.max_noise_level}] (max_noise_level); "
                f"got {self.noise_level}"
            )
        if self.noise_levels and self.max_noise_level >= self.noise_levels:
            raise ValueError("spatial.max_noise_level must be below noise_levels")
        if self.layout not in INPAINT_LAYOUTS:
            raise ValueError(
                f"spatial.layout must be one of {', '.join(INPAINT_LAYOUTS)}; got {self.layout!r}"
            )

    def channels(self, z_channels: int) -> int:
        """Channels this condition adds to the UNet's input."""
        if self.kind == "inpaint":
            return z_channels + 1  # the encoded masked image and the mask
        if self.kind == "semantic":
            return self.rescaler_channels or self.classes  # mapped, or one-hot
        return self.image_channels


def coordinate_grid(x: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) channels holding each pixel's x and y in [-1, 1], for concatenation with x
    (B, C, H, W): CoordConv (Liu et al. 2018), so convolutions and cross-attention queries know
    where they are."""
    b, _, h, w = x.shape
    ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"))  # (2, H, W): x, then y
    return grid.expand(b, -1, -1, -1)


def bicubic_degrade(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Antialiased bicubic downsampling by `factor` (the LDM-SR degradation), in [-1, 1]."""
    h, w = images.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(f"image size {h}x{w} is not divisible by the factor {factor}")
    size = (h // factor, w // factor)
    return F.interpolate(images, size, mode="bicubic", antialias=True, align_corners=False).clamp(
        -1, 1
    )


def bicubic_upsample(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Bicubic upsampling by `factor`: the baseline a super-resolution model must beat."""
    h, w = images.shape[-2:]
    size = (h * factor, w * factor)
    return F.interpolate(images, size, mode="bicubic", align_corners=False).clamp(-1, 1)


def resize_condition(condition: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A spatial condition at the latent's side (area average down, bicubic up, as is if equal)."""
    if tuple(condition.shape[-2:]) == size:
        return condition
    if condition.shape[-2] > size[0]:
        return F.interpolate(condition, size, mode="area")
    return F.interpolate(condition, size, mode="bicubic", align_corners=False)


def masked_images(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The known part of each image: holes (mask 1) set to 0, mid-grey in [-1, 1]."""
    return images * (1.0 - masks)


def random_masks(generators: Sequence[torch.Generator], size: int) -> torch.Tensor:
    """(B, 1, size, size) hole masks (1 = to fill), one per generator.

    Half are one to three boxes, half are one to four thick brush strokes, after the large-mask
    recipe used for inpainting models; a hole covers 2-55% of the image, a quarter on average.
    """
    masks = [_random_mask(g, size) for g in generators]
    return (torch.stack(masks).view(-1, 1, size, size) > 127).float()


def _random_mask(g: torch.Generator, size: int) -> torch.Tensor:
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)

    def u() -> float:
        return float(torch.rand(1, generator=g))

    if u() < 0.5:
        for _ in range(1 + int(u() * 3)):
            w, h = (size * (0.2 + 0.4 * u()) for _ in range(2))
            x0, y0 = u() * (size - w), u() * (size - h)
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=255)
    else:
        for _ in range(1 + int(u() * 4)):
            width = max(2, int(size * (0.08 + 0.1 * u())))
            x, y = u() * size, u() * size
            points = [(x, y)]
            for _ in range(2 + int(u() * 3)):
                angle, length = 2 * math.pi * u(), size * (0.15 + 0.25 * u())
                x = min(max(x + length * math.cos(angle), 0), size)
                y = min(max(y + length * math.sin(angle), 0), size)
                points.append((x, y))
            draw.line(points, fill=255, width=width, joint="curve")
            r = width / 2
            for px, py in points:
                draw.ellipse((px - r, py - r, px + r, py + r), fill=255)
    return torch.frombuffer(bytearray(canvas.tobytes()), dtype=torch.uint8)


def one_hot_map(semantic: torch.Tensor, classes: int) -> torch.Tensor:
    """(B, H, W) class ids -> (B, classes, H, W) one-hot float; out-of-range ids are an error."""
    ids = semantic.long()
    if ids.min() < 0 or ids.max() >= classes:
        raise ValueError(
            f"the semantic map has class ids {int(ids.min())}..{int(ids.max())}, outside "
            f"0..{classes - 1} (0 = background); use the model's classes"
        )
    return F.one_hot(ids, classes).permute(0, 3, 1, 2).float()


def colourise(semantic: torch.Tensor, classes: int) -> torch.Tensor:
    """(B, H, W) class ids -> (B, 3, H, W) in [-1, 1]: background mid-grey, each class a fixed
    hue (for looking at maps, not for measuring)."""
    hues = torch.arange(classes, dtype=torch.float32) * 0.618034 % 1.0  # golden-ratio spread
    angle = 2 * math.pi * (hues[:, None] - torch.tensor([0.0, 1 / 3, 2 / 3]))
    palette = 0.8 * torch.cos(angle)  # (classes, 3)
    palette[0] = 0.0
    return palette[semantic.long()].permute(0, 3, 1, 2)


def noise_augmented(
    images: torch.Tensor, config: SpatialConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """`images` noised to `config.noise_level` of the augmentation schedule: sqrt(a) x +
    sqrt(1 - a) eps with a the schedule's alpha_bar there (LDM's sqrt-linear betas from
    noise_beta_start to noise_beta_end over noise_levels steps); eps from `generator`."""
    root_betas = torch.linspace(
        math.sqrt(config.noise_beta_start),
        math.sqrt(config.noise_beta_end),
        config.noise_levels,
        dtype=torch.float64,
    )
    alpha_bar = torch.cumprod(1.0 - root_betas.square(), 0)[config.noise_level]
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
    noise = noise.to(images.device)
    signal, spread = alpha_bar.sqrt().to(images.dtype), (1.0 - alpha_bar).sqrt().to(images.dtype)
    return signal * images + spread * noise
