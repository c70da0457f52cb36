"""What a released UNet's extra input channels are: the conditioner that fills them.

Stable Diffusion's inpainting models take 9 channels: the 4 of z_t, the mask, then the first
stage's encoding of the known part of the image (`SpatialConfig(layout="stable_diffusion")`).
Other widths (the x4 upscaler's 7, depth-to-image's 5) are not read yet, and say so.
"""

from ldmkit.checkpoint import CheckpointError
from ldmkit.conditioning import SpatialCondition, SpatialConfig


def concat_conditioners(
    in_channels: int, latent_channels: int, source: str
) -> tuple[SpatialCondition, ...]:
    """The conditioners that fill a UNet's `in_channels` beyond the latent's."""
    if in_channels == latent_channels:
        return ()
    if in_channels == 2 * latent_channels + 1:
        inpaint = SpatialConfig(kind="inpaint", layout="stable_diffusion")
        return (SpatialCondition(map=inpaint),)
    raise CheckpointError(
        f"{source}: the UNet takes {in_channels} input channels for a {latent_channels}-channel "
        f"latent; ldmkit reads text-to-image ({latent_channels}) and inpainting "
        f"({2 * latent_channels + 1}) UNets, not yet the x4 upscaler or depth-to-image ones"
    )
