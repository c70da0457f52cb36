"""The spatially aligned conditions concatenated with z_t (Rombach et al. 2022, 3.3): the
low-resolution image (super-resolution), the first stage's encoding of the masked image plus the
mask (inpainting), the one-hot map (semantic synthesis); built from user inputs or, in training,
from clean batches."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ldmkit.conditioning.conditioner import (
    BuildContext,
    Conditioner,
    ConditionerConfig,
    Conditioning,
    Generators,
    Items,
    Preview,
)
from ldmkit.conditioning.spatial import (
    SpatialConfig,
    bicubic_degrade,
    colourise,
    masked_images,
    noise_augmented,
    one_hot_map,
    random_masks,
    resize_condition,
)

Encode = Callable[[torch.Tensor], torch.Tensor]  # images (B, C, H, W) -> latents


@dataclass(frozen=True, kw_only=True)
class SpatialCondition(ConditionerConfig):
    """A map concatenated with z_t (`map.kind`: super_resolution, inpaint, semantic); `dropout`
    zeroes it in training, which gives spatial-only models a null condition for guidance."""

    kind: Literal["spatial"] = "spatial"
    map: SpatialConfig = field(default_factory=SpatialConfig)
    dropout: float = 0.0
    output: ClassVar[str] = "concat"

    def build(self, context: BuildContext) -> "SpatialConditioner":
        """A `SpatialConditioner` over the first stage's encoder."""
        return SpatialConditioner(self.map, context.encode_images, context.factor, self.dropout)

    def fills(self) -> tuple[str, ...]:
        """The map, and a noise-augmented map's level as the class label `y`."""
        return ("concat", "y") if self.map.noise_levels else ("concat",)

    def check_unet(self, context_dim: int | None, class_rows: int | None) -> None:
        """A noise-augmented map's level is the UNet's class label: one row per level."""
        if self.map.noise_levels and class_rows != self.map.noise_levels:
            raise ValueError(
                f"unet.num_classes must be {self.map.noise_levels} (one row per noise level of "
                f"the augmented low-resolution image); it is {class_rows}"
            )


class SpatialConditioner(Conditioner):
    """A map at the latent's side, concatenated with z_t. `encode_images` is the first stage's
    encoder (inpainting encodes the masked image with it) and `factor` its downsampling factor.
    Zeros are the null condition, which `dropout` trains; hybrid models keep the map in both
    branches of guidance and guide with their other condition."""

    kind = "spatial"
    input_name = "condition"
    description = "conditioned on a spatial input"
    nulled_in_hybrid = False
    reads_images = True
    max_preview = 8

    def __init__(
        self, config: SpatialConfig, encode_images: Encode, factor: int, dropout: float = 0.0
    ):
        super().__init__(dropout)
        self.config = config
        self.factor = factor
        # The learned 1x1 map of a rescaled semantic condition (CompVis's SpatialRescaler).
        self.channel_mapper: nn.Conv2d | None = None
        if config.kind == "semantic" and config.rescaler_channels:
            self.channel_mapper = nn.Conv2d(config.classes, config.rescaler_channels, 1, bias=False)
            self.weights_file = "spatial_mapper.safetensors"
        # A plain attribute, not a submodule: the first stage belongs to the pipeline.
        self.encode_images = encode_images

    def trained_module(self) -> nn.Module | None:
        """The learned channel map of a rescaled semantic condition, if any."""
        return self.channel_mapper

    @property
    def name(self) -> str:
        """Which map: super_resolution, inpaint or semantic."""
        return self.config.kind

    @property
    def can_guide(self) -> bool:
        """Only when trained with dropout (its null condition)."""
        return self.dropout > 0.0

    def guide_hint(self) -> str:
        return (
            "guidance needs a model trained with spatial dropout > 0 (its null condition); "
            "sample with guidance 1"
        )

    def concat_channels(self, z_channels: int) -> int:
        """The map's channels at a latent of `z_channels`."""
        return self.config.channels(z_channels)

    def encode(self, values: Any, n: int, device: torch.device) -> Conditioning:
        """`n` maps (n, k, h, w) from `condition()` as concat channels (and a noise-augmented
        model's noise level as `y`)."""
        if values is None or values.shape[0] != n:
            raise ValueError(
                f"this model is conditioned on a {self.config.kind} input: pass {n} condition "
                f"maps, condition= ({n}, k, h, w) from spatial_condition()"
            )
        return {"concat": values.to(device), **self._noise_level(n, device)}

    def null(self, cond: Conditioning, n: int, device: torch.device) -> Conditioning:
        """Zeros of the map's shape (the noise level kept)."""
        return {"concat": torch.zeros_like(cond["concat"]), **self._noise_level(n, device)}

    def set_noise_level(self, level: int) -> None:
        """The noise level the next low-resolution images are augmented with (and the UNet is
        told); a ValueError unless the model is noise-augmented and level <= its maximum."""
        if not self.config.noise_levels:
            raise ValueError("this model takes no noise level (it is not noise-augmented)")
        self.config = replace(self.config, noise_level=level)  # validated again

    def _noise_level(self, n: int, device: torch.device) -> Conditioning:
        if not self.config.noise_levels:
            return {}
        return {"y": torch.full((n,), self.config.noise_level, dtype=torch.long, device=device)}

    def latent_size(self, values: Any) -> tuple[int, int] | None:
        """The map's side."""
        return None if values is None else (int(values.shape[-2]), int(values.shape[-1]))

    def preview(self, items: Items, generators: Generators, device: torch.device) -> Preview:
        """The items' maps (degraded images, holes, maps), shown above the samples, and the
        items' images below."""
        batch = {
            key: torch.stack([torch.as_tensor(item[key]) for item in items]).to(device)
            for key in ("image", "semantic")
            if key in items[0]
        }
        condition, shown = self.degrade(batch, generators)
        return Preview(condition, above=shown, below=batch["image"])

    @torch.no_grad()
    def condition(
        self,
        low_res: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        semantic: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The map at the latent's side: super-resolution takes `low_res` (B, C, h, w) in
        [-1, 1] (output side h * factor; a noise-augmented model's noise drawn from
        `generator`); inpainting takes `image` (B, C, H, W) in [-1, 1] and
        `mask` (B, 1, H, W), 1 where the image is to be filled; semantic synthesis takes the
        map `semantic` (B, H, W) of class ids (output side H)."""
        spatial = self.config
        if spatial.kind == "semantic":
            if semantic is None:
                raise ValueError("a semantic synthesis model needs the map (B, H, W class ids)")
            one_hot = one_hot_map(semantic, spatial.classes)
            side = self._latent_side(semantic.shape[-2:])
            if self.channel_mapper is None:
                return resize_condition(one_hot, side)
            while one_hot.shape[-2] > side[0]:  # CompVis's SpatialRescaler: bilinear halvings
                one_hot = F.interpolate(one_hot, scale_factor=0.5, mode="bilinear")
            weight = self.channel_mapper.weight
            return self.channel_mapper(one_hot.to(weight.device, weight.dtype))
        if spatial.kind == "super_resolution":
            if low_res is None:
                raise ValueError("a super-resolution model needs the low-resolution image")
            out = (low_res.shape[-2] * spatial.factor, low_res.shape[-1] * spatial.factor)
            resized = resize_condition(low_res, self._latent_side(out))
            return noise_augmented(resized, spatial, generator) if spatial.noise_levels else resized
        if image is None or mask is None:
            raise ValueError("an inpainting model needs the image and its mask")
        if mask.shape[-2:] != image.shape[-2:] or mask.shape[1] != 1:
            raise ValueError(
                f"the mask must be (B, 1, H, W) like the image's H, W; got {tuple(mask.shape)} "
                f"for an image {tuple(image.shape)}"
            )
        if spatial.layout == "stable_diffusion":
            known = self.encode_images(image * (mask < 0.5).to(image.dtype))
            small = F.interpolate(mask.to(known.dtype), known.shape[-2:], mode="nearest")
            return torch.cat([small, known], 1)
        if spatial.layout == "compvis":
            hole = (mask >= 0.5).to(image.dtype)
            known = self.encode_images(image * (1.0 - hole))
            small = F.interpolate(hole.to(known.dtype), known.shape[-2:], mode="nearest")
            return torch.cat([known, small], 1)
        known = self.encode_images(masked_images(image, mask))
        return torch.cat([known, resize_condition(mask.to(known.dtype), known.shape[-2:])], 1)

    def _latent_side(self, size: Sequence[int]) -> tuple[int, int]:
        f = self.factor
        if size[0] % f or size[1] % f:
            raise ValueError(
                f"the {size[0]}x{size[1]} output is not divisible by the first stage's f={f}"
            )
        return size[0] // f, size[1] // f

    @torch.no_grad()
    def degrade(
        self, batch: dict[str, Any], generators: Sequence[torch.Generator]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(map, picture of the input) from a batch of clean data ("image", and "semantic" for
        semantic models): the bicubic low-resolution image (shown upscaled by repetition), the
        image with a random hole (shown grey), or the map (shown in colours)."""
        spatial = self.config
        needed = "semantic" if spatial.kind == "semantic" else "image"
        if needed not in batch:
            raise ValueError(
                f"{spatial.kind} conditioning needs the batch's {needed!r} (shapes data has "
                "semantic maps; latent caches keep images and maps)"
            )
        if spatial.kind == "semantic":
            semantic = batch["semantic"]
            condition = self.condition(semantic=semantic)
            return condition, colourise(semantic.cpu(), spatial.classes).to(condition.device)
        images = batch["image"]
        if spatial.kind == "super_resolution":
            low_res = bicubic_degrade(images, spatial.factor)
            shown = low_res.repeat_interleave(spatial.factor, -2).repeat_interleave(
                spatial.factor, -1
            )
            return self.condition(low_res=low_res), shown
        masks = random_masks(generators, images.shape[-1]).to(images.device, images.dtype)
        return self.condition(image=images, mask=masks), masked_images(images, masks)

    def training_condition(
        self, batch: dict[str, Any], generators: Sequence[torch.Generator] | None
    ) -> Conditioning:
        """The map of a training batch (degraded image, random hole or map), zeroed for a
        `dropout` fraction."""
        if generators is None:
            raise ValueError(
                "spatial conditioning draws its masks and dropout per sample: pass generators"
            )
        if self.config.noise_levels:
            raise ValueError(
                "training a noise-augmented super-resolution model (random noise levels per "
                "sample) is not supported yet; it samples"
            )
        condition, _ = self.degrade(batch, generators)
        kept = [not drop for drop in self.dropped(generators, len(condition))]
        keep = torch.tensor(kept, device=condition.device, dtype=condition.dtype)
        return {"concat": condition * keep.view(-1, 1, 1, 1)}
