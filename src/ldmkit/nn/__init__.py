"""L0: generic layers shared by the autoencoder and the denoiser."""

from ldmkit.nn.normalization import group_norm
from ldmkit.nn.resampling import Downsample, Upsample
from ldmkit.nn.resnet_block import ResnetBlock
from ldmkit.nn.spatial_attention import SpatialSelfAttention

__all__ = ["Downsample", "ResnetBlock", "SpatialSelfAttention", "Upsample", "group_norm"]
