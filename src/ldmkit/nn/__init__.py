"""L0: generic layers shared by the autoencoder and the denoiser."""

from ldmkit.nn.attention import Attention
from ldmkit.nn.feed_forward import GEGLU, FeedForward
from ldmkit.nn.fourier import fourier_features, grid_fourier_features
from ldmkit.nn.normalization import group_norm
from ldmkit.nn.resampling import Downsample, Upsample
from ldmkit.nn.resnet_block import ResnetBlock
from ldmkit.nn.spatial_attention import SpatialSelfAttention
from ldmkit.nn.tiling import tiled_apply
from ldmkit.nn.timestep_embedding import timestep_embedding
from ldmkit.nn.winograd import (
    WinogradConv2d,
    native_winograd_available,
    use_winograd,
    winograd_conv3x3,
    winograd_kernel,
)

__all__ = [
    "GEGLU",
    "Attention",
    "Downsample",
    "FeedForward",
    "ResnetBlock",
    "SpatialSelfAttention",
    "Upsample",
    "WinogradConv2d",
    "fourier_features",
    "grid_fourier_features",
    "group_norm",
    "native_winograd_available",
    "tiled_apply",
    "timestep_embedding",
    "use_winograd",
    "winograd_conv3x3",
    "winograd_kernel",
]
