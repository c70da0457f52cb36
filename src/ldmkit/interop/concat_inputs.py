"""What a released UNet's extra input channels are: the conditioner that fills them.

Stable Diffusion's inpainting models take 9 channels: the 4 of z_t, the mask, then the first
stage's encoding of the known part of the image (`SpatialConfig(layout="stable_diffusion")`).
The x4 upscaler takes 7: z_t and the noise-augmented low-resolution image at the latent's side,
its noise level the UNet's class label (`SpatialConfig(noise_levels=...)`). Other widths
(depth-to-image's 5) are not read yet, and say so.
"""

from ldmkit.checkpoint import CheckpointError
from ldmkit.conditioning import SpatialCondition, SpatialConfig

# The x4 upscaler's augmentation: noise levels up to 350 of a 1000-step sqrt-linear schedule
# from 0.0001 to 0.02 (`low_scale_config` in x4-upscaling.yaml), sampled at 20 by default.
MAX_NOISE_LEVEL = 350
NOISE_BETAS = (0.0001, 0.02)


def concat_conditioners(
    in_channels: int,
    latent_channels: int,
    source: str,
    class_rows: int | None = None,
    factor: int = 4,
    max_noise_level: int = MAX_NOISE_LEVEL,
    noise_betas: tuple[float, float] = NOISE_BETAS,
) -> tuple[SpatialCondition, ...]:
    """The conditioners that fill a UNet's `in_channels` beyond the latent's (`class_rows`:
    its class table, the noise levels of an upscaler; `factor`: the first stage's f;
    `noise_betas`: the ends of the upscaler's sqrt-linear augmentation schedule)."""
    if in_channels == latent_channels:
        return ()
    if in_channels == latent_channels + 3 and class_rows:
        upscale = SpatialConfig(
            kind="super_resolution",
            factor=factor,
            noise_levels=class_rows,
            max_noise_level=max_noise_level,
            noise_beta_start=noise_betas[0],
            noise_beta_end=noise_betas[1],
        )
        return (SpatialCondition(map=upscale),)
    if in_channels == 2 * latent_channels + 1:
        inpaint = SpatialConfig(kind="inpaint", layout="stable_diffusion")
        return (SpatialCondition(map=inpaint),)
    raise CheckpointError(
        f"{source}: the UNet takes {in_channels} input channels for a {latent_channels}-channel "
        f"latent; ldmkit reads text-to-image ({latent_channels}), inpainting "
        f"({2 * latent_channels + 1}) and x4-upscaler ({latent_channels + 3}, with a noise-level "
        "embedding) UNets, not yet depth-to-image ones"
    )
