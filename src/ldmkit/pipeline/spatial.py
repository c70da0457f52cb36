"""The spatially aligned conditions of LatentDiffusion (concatenated with z_t; Rombach et al.
2022, 3.3): the low-resolution image (super-resolution), the encoded masked image and its mask
(inpainting), the one-hot map (semantic synthesis), built from user inputs or, in training, from
clean batches."""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from ldmkit.autoencoder import Autoencoder
from ldmkit.conditioning import (
    bicubic_degrade,
    colourise,
    masked_images,
    one_hot_map,
    random_masks,
    resize_condition,
)
from ldmkit.pipeline.config import DiffusionConfig


class SpatialConditions:
    """LatentDiffusion's methods for its concatenated condition (a mixin: it uses the model's
    config, first stage and `encode`)."""

    config: DiffusionConfig
    autoencoder: Autoencoder

    if TYPE_CHECKING:  # provided by LatentDiffusion; declared here for the type checker only

        def encode(self, images: torch.Tensor) -> torch.Tensor: ...

    @torch.no_grad()
    def spatial_condition(
        self,
        low_res: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        semantic: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The concatenated condition at the latent's side: super-resolution takes `low_res`
        (B, C, h, w) in [-1, 1] (output side h * factor); inpainting takes `image` (B, C, H, W)
        in [-1, 1] and `mask` (B, 1, H, W), 1 where the image is to be filled; semantic
        synthesis takes the map `semantic` (B, H, W) of class ids (output side H)."""
        spatial = self.config.spatial
        if spatial is None:
            raise ValueError("this model has no spatial condition (config.spatial is None)")
        if spatial.kind == "semantic":
            if semantic is None:
                raise ValueError("a semantic synthesis model needs the map (B, H, W class ids)")
            return resize_condition(
                one_hot_map(semantic, spatial.classes), self._latent_side(semantic.shape[-2:])
            )
        if spatial.kind == "super_resolution":
            if low_res is None:
                raise ValueError("a super-resolution model needs the low-resolution image")
            out = (low_res.shape[-2] * spatial.factor, low_res.shape[-1] * spatial.factor)
            return resize_condition(low_res, self._latent_side(out))
        if image is None or mask is None:
            raise ValueError("an inpainting model needs the image and its mask")
        if mask.shape[-2:] != image.shape[-2:] or mask.shape[1] != 1:
            raise ValueError(
                f"the mask must be (B, 1, H, W) like the image's H, W; got {tuple(mask.shape)} "
                f"for an image {tuple(image.shape)}"
            )
        known = self.encode(masked_images(image, mask))
        return torch.cat([known, resize_condition(mask.to(known.dtype), known.shape[-2:])], 1)

    def _latent_side(self, size: Sequence[int]) -> tuple[int, int]:
        f = self.autoencoder.factor
        if size[0] % f or size[1] % f:
            raise ValueError(
                f"the {size[0]}x{size[1]} output is not divisible by the first stage's f={f}"
            )
        return size[0] // f, size[1] // f

    @torch.no_grad()
    def degrade(
        self, batch: dict[str, Any], generators: Sequence[torch.Generator]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(spatial condition, picture of the input) from a batch of clean data ("image", and
        "semantic" for semantic models): the bicubic low-resolution image (shown upscaled by
        repetition), the image with a random hole (shown grey), or the map (shown in colours)."""
        spatial = self.config.spatial
        if spatial is None:
            raise ValueError("this model has no spatial condition (config.spatial is None)")
        needed = "semantic" if spatial.kind == "semantic" else "image"
        if needed not in batch:
            raise ValueError(
                f"{spatial.kind} conditioning needs the batch's {needed!r} (shapes data has "
                "semantic maps; latent caches keep images and maps)"
            )
        if spatial.kind == "semantic":
            semantic = batch["semantic"]
            condition = self.spatial_condition(semantic=semantic)
            return condition, colourise(semantic.cpu(), spatial.classes).to(condition.device)
        images = batch["image"]
        if spatial.kind == "super_resolution":
            low_res = bicubic_degrade(images, spatial.factor)
            shown = low_res.repeat_interleave(spatial.factor, -2).repeat_interleave(
                spatial.factor, -1
            )
            return self.spatial_condition(low_res=low_res), shown
        masks = random_masks(generators, images.shape[-1]).to(images.device, images.dtype)
        return self.spatial_condition(image=images, mask=masks), masked_images(images, masks)

    def training_condition(
        self, batch: dict[str, Any], generators: Sequence[torch.Generator]
    ) -> torch.Tensor:
        """The spatial condition of a training batch (degraded image, random hole or map),
        zeroed for a `spatial_dropout` fraction."""
        condition, _ = self.degrade(batch, generators)
        u = torch.cat([torch.rand(1, generator=g) for g in generators])
        keep = (u >= self.config.spatial_dropout).to(condition.device, condition.dtype)
        return condition * keep.view(-1, 1, 1, 1)
