"""Named latent-diffusion presets: `tiny`, `tiny-text`, `tiny-layout`, `tiny-sr`,
`tiny-inpaint`, `tiny-semantic`, `tiny-uncond` (tests); for this CPU `shapes-class`,
`shapes-class-demo`, `fmnist-class`, `shapes-text`, `shapes-layout`, `shapes-sr`, `shapes-sr8`,
`shapes-inpaint`, `shapes-semantic` and `uncond`. With `--data DIR` the class, text and
unconditional ones train on an image folder."""

import dataclasses

from ldmkit.conditioning import (
    ClassCondition,
    LayoutCondition,
    LayoutConfig,
    SpatialCondition,
    SpatialConfig,
    TextCondition,
    TextEncoderConfig,
)
from ldmkit.data.config import DataConfig
from ldmkit.diffusion import DiffusionLossConfig
from ldmkit.pipeline import DiffusionConfig
from ldmkit.training.config import DiffusionRunConfig, DiffusionTrainConfig, OptimConfig
from ldmkit.unet import unet_preset

SHAPES_CLASSES = 30  # kind x colour
FASHION_MNIST_CLASSES = 10

DIFFUSION_PRESETS: dict[str, DiffusionTrainConfig] = {
    "tiny": DiffusionTrainConfig(
        model=DiffusionConfig(
            unet=unet_preset("tiny", context_dim=None, num_classes=SHAPES_CLASSES + 1),
            conditioners=(ClassCondition(num_classes=SHAPES_CLASSES),),
            latent_size=16,
        ),
        data=DataConfig(resolution=32, size=64, single_object=True),
        optim=OptimConfig(lr=1e-3, betas=(0.9, 0.999)),
        run=DiffusionRunConfig(
            steps=20,
            batch_size=8,
            sample_every=10,
            checkpoint_every=10,
            sample_count=4,
            sample_steps=5,
        ),
    ),
    # Class-conditional shapes (one object, 30 classes) on the latents of a kl-f4 autoencoder
    # (3 x 16 x 16 for 64 px images). ~27 min here; 92.7% adherence (docs/results).
    "shapes-class": DiffusionTrainConfig(
        model=DiffusionConfig(
            unet=unet_preset("small", context_dim=None, num_classes=SHAPES_CLASSES + 1),
            loss=DiffusionLossConfig(min_snr_gamma=5.0),
            conditioners=(ClassCondition(num_classes=SHAPES_CLASSES),),
            latent_size=16,
        ),
        data=DataConfig(resolution=64, size=20000, single_object=True),
        optim=OptimConfig(
            lr=5e-4, betas=(0.9, 0.999), warmup_steps=200, schedule="cosine", min_lr_ratio=0.1
        ),
        run=DiffusionRunConfig(
            steps=2700,
            batch_size=64,
            precision="auto",  # bf16 where native, else fp32
            sample_every=500,
            checkpoint_every=500,
            sample_count=30,
            sample_steps=50,
        ),
    ),
}

# Class-conditional Fashion-MNIST (10 classes) on the 3 x 8 x 8 latents of `fmnist-kl-f4`.
DIFFUSION_PRESETS["fmnist-class"] = dataclasses.replace(
    DIFFUSION_PRESETS["shapes-class"],
    model=DiffusionConfig(
        unet=unet_preset("small", context_dim=None, num_classes=FASHION_MNIST_CLASSES + 1),
        loss=DiffusionLossConfig(min_snr_gamma=5.0),
        conditioners=(ClassCondition(num_classes=FASHION_MNIST_CLASSES),),
        latent_size=8,
    ),
    data=DataConfig(kind="fashion-mnist", resolution=32, size=60000),
    run=dataclasses.replace(DIFFUSION_PRESETS["shapes-class"].run, steps=3000, sample_count=30),
)

# The demo's share of a 10-minute budget on a 2-core CPU: `shapes-class` cut to ~7 minutes
# (its cosine schedule spans the shorter run).
_CLASS = DIFFUSION_PRESETS["shapes-class"]
DIFFUSION_PRESETS["shapes-class-demo"] = dataclasses.replace(
    _CLASS,
    data=dataclasses.replace(_CLASS.data, size=10000),
    optim=dataclasses.replace(_CLASS.optim, warmup_steps=100),
    run=dataclasses.replace(_CLASS.run, steps=700, sample_every=0, checkpoint_every=250),
)

# Text-to-image: captions of the tokenizer's words, a 2-layer transformer tau_theta trained with
# the UNet, its 77 output tokens the cross-attention context (Rombach et al. 2022, 3.3).
DIFFUSION_PRESETS["tiny-text"] = dataclasses.replace(
    DIFFUSION_PRESETS["tiny"],
    model=DiffusionConfig(
        unet=unet_preset("tiny"),
        conditioners=(
            TextCondition(
                encoder=TextEncoderConfig(
                    vocab_size=200, width=32, layers=1, heads=2, max_length=32
                )
            ),
        ),
        latent_size=16,
    ),
    data=DataConfig(resolution=32, size=64),
)
DIFFUSION_PRESETS["shapes-text"] = dataclasses.replace(
    _CLASS,
    model=DiffusionConfig(
        unet=unet_preset("small", context_dim=128),
        conditioners=(
            TextCondition(
                encoder=TextEncoderConfig(
                    vocab_size=512, width=128, layers=2, heads=4, max_length=77
                )
            ),
        ),
        loss=DiffusionLossConfig(min_snr_gamma=5.0),
        latent_size=16,
    ),
    data=DataConfig(resolution=64, size=20000),
)

# Layout-to-image: each box as (top-left cell, bottom-right cell, class) tokens on a 32 x 32 grid
# (2 px cells at 64 px), read by a 2-layer transformer trained with the UNet (Rombach et al.
# 2022, 4.3.1); one to four objects per image. Coordinate channels tell the UNet where each pixel
# is, so its cross-attention can put a box's object there.
DIFFUSION_PRESETS["tiny-layout"] = dataclasses.replace(
    DIFFUSION_PRESETS["tiny"],
    model=DiffusionConfig(
        unet=unet_preset("tiny", in_channels=3 + 2, position_frequencies=2),
        coordinate_channels=True,
        conditioners=(
            LayoutCondition(
                encoder=LayoutConfig(
                    classes=SHAPES_CLASSES, bins=8, max_objects=4, width=32, layers=1, heads=2
                )
            ),
        ),
        latent_size=16,
    ),
    data=DataConfig(resolution=32, size=64),
)
DIFFUSION_PRESETS["shapes-layout"] = dataclasses.replace(
    _CLASS,
    model=DiffusionConfig(
        # Cross-attention at every level (16 x 16 latents included), its queries given their
        # positions; see docs/results/layout_to_image.md for what each of these changed.
        unet=unet_preset(
            "small",
            context_dim=128,
            in_channels=3 + 2,
            attention_resolutions=(1, 2, 4),
            position_frequencies=6,
        ),
        coordinate_channels=True,
        conditioners=(
            LayoutCondition(
                encoder=LayoutConfig(classes=SHAPES_CLASSES, bins=32, max_objects=4, width=128)
            ),
        ),
        loss=DiffusionLossConfig(min_snr_gamma=5.0),
        latent_size=16,
    ),
    data=DataConfig(resolution=64, size=20000),
    run=dataclasses.replace(_CLASS.run, steps=2000, sample_count=8, sample_every=500),
)

# Concatenation conditioning (Rombach et al. 2022, 3.3): x4 super-resolution from the bicubic
# 16 x 16 image (the kl-f4 latent's side, so the condition needs no resizing), and inpainting from
# the encoded masked image plus the mask (3 + 3 + 1 input channels).
_SR = (SpatialCondition(map=SpatialConfig(kind="super_resolution", factor=4)),)
_INPAINT = (SpatialCondition(map=SpatialConfig(kind="inpaint")),)
_SEMANTIC_MAP = SpatialConfig(kind="semantic", classes=SHAPES_CLASSES + 1)  # background + 30
_SEMANTIC = (SpatialCondition(map=_SEMANTIC_MAP),)
DIFFUSION_PRESETS["tiny-sr"] = dataclasses.replace(
    DIFFUSION_PRESETS["tiny"],
    model=DiffusionConfig(
        unet=unet_preset("tiny", context_dim=None, in_channels=6), conditioners=_SR, latent_size=16
    ),
    data=DataConfig(resolution=32, size=64),
)
DIFFUSION_PRESETS["tiny-inpaint"] = dataclasses.replace(
    DIFFUSION_PRESETS["tiny-sr"],
    model=DiffusionConfig(
        unet=unet_preset("tiny", context_dim=None, in_channels=7),
        conditioners=_INPAINT,
        latent_size=16,
    ),
)
DIFFUSION_PRESETS["shapes-sr"] = dataclasses.replace(
    _CLASS,
    model=DiffusionConfig(
        unet=unet_preset("small", context_dim=None, in_channels=6),
        loss=DiffusionLossConfig(min_snr_gamma=5.0),
        conditioners=_SR,
        latent_size=16,
    ),
    data=DataConfig(resolution=64, size=20000),
    run=dataclasses.replace(_CLASS.run, steps=1200, sample_count=8, sample_every=400),
)
# x8 (8 -> 64 px): the 8 x 8 bicubic image is resized to the 16 x 16 latent side.
DIFFUSION_PRESETS["shapes-sr8"] = dataclasses.replace(
    DIFFUSION_PRESETS["shapes-sr"],
    model=dataclasses.replace(
        DIFFUSION_PRESETS["shapes-sr"].model,
        conditioners=(SpatialCondition(map=SpatialConfig(kind="super_resolution", factor=8)),),
    ),
)
DIFFUSION_PRESETS["shapes-inpaint"] = dataclasses.replace(
    DIFFUSION_PRESETS["shapes-sr"],
    model=dataclasses.replace(
        DIFFUSION_PRESETS["shapes-sr"].model,
        unet=unet_preset("small", context_dim=None, in_channels=7),
        conditioners=_INPAINT,
    ),
)
DIFFUSION_PRESETS["tiny-semantic"] = dataclasses.replace(
    DIFFUSION_PRESETS["tiny-sr"],
    model=DiffusionConfig(
        unet=unet_preset("tiny", context_dim=None, in_channels=3 + _SEMANTIC_MAP.classes),
        conditioners=_SEMANTIC,
        latent_size=16,
    ),
)
# Semantic synthesis: the one-hot shapes map (31 channels, area-averaged to 16 x 16) with z_t.
DIFFUSION_PRESETS["shapes-semantic"] = dataclasses.replace(
    DIFFUSION_PRESETS["shapes-sr"],
    model=dataclasses.replace(
        DIFFUSION_PRESETS["shapes-sr"].model,
        unet=unet_preset("small", context_dim=None, in_channels=3 + _SEMANTIC_MAP.classes),
        conditioners=_SEMANTIC,
    ),
)

# Unconditional: the `shapes-class` UNet and recipe with no condition (no class table).
DIFFUSION_PRESETS["tiny-uncond"] = dataclasses.replace(
    DIFFUSION_PRESETS["tiny"],
    model=DiffusionConfig(unet=unet_preset("tiny", context_dim=None), latent_size=16),
)
DIFFUSION_PRESETS["uncond"] = dataclasses.replace(
    _CLASS,
    model=DiffusionConfig(
        unet=unet_preset("small", context_dim=None),
        loss=DiffusionLossConfig(min_snr_gamma=5.0),
        latent_size=16,
    ),
    data=DataConfig(resolution=64, size=20000),
)
