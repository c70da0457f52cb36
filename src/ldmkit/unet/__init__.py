"""L1: the denoiser backbone, UNet(x_t, t, context=None, y=None), and its presets."""

from ldmkit.unet.config import UNetConfig
from ldmkit.unet.model import UNet
from ldmkit.unet.presets import UNET_PRESETS, unet_preset

__all__ = ["UNET_PRESETS", "UNet", "UNetConfig", "unet_preset"]
