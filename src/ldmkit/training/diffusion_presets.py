"""Named latent-diffusion presets: `tiny` (tests) and `shapes-class` (this CPU)."""

from ldmkit.data.config import DataConfig
from ldmkit.pipeline import DiffusionConfig
from ldmkit.training.config import DiffusionRunConfig, DiffusionTrainConfig, OptimConfig
from ldmkit.unet import unet_preset

SHAPES_CLASSES = 30  # kind x colour

DIFFUSION_PRESETS: dict[str, DiffusionTrainConfig] = {
    "tiny": DiffusionTrainConfig(
        model=DiffusionConfig(
            unet=unet_preset("tiny", context_dim=None, num_classes=SHAPES_CLASSES + 1),
            num_classes=SHAPES_CLASSES,
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
    # (3 x 16 x 16 for 64 px images).
    "shapes-class": DiffusionTrainConfig(
        model=DiffusionConfig(
            unet=unet_preset("small", context_dim=None, num_classes=SHAPES_CLASSES + 1),
            num_classes=SHAPES_CLASSES,
            latent_size=16,
        ),
        data=DataConfig(resolution=64, size=20000, single_object=True),
        optim=OptimConfig(
            lr=5e-4, betas=(0.9, 0.999), warmup_steps=200, schedule="cosine", min_lr_ratio=0.1
        ),
        run=DiffusionRunConfig(
            steps=6000,
            batch_size=64,
            precision="bf16",
            sample_every=500,
            checkpoint_every=500,
            sample_count=30,
            sample_steps=50,
        ),
    ),
}
