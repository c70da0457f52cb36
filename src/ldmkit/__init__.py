"""ldmkit: Latent Diffusion Models (Rombach et al., CVPR 2022), complete and small."""

__version__ = "0.1.0"
