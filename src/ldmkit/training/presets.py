"""Named autoencoder presets: `tiny` (tests), CPU-sized `kl-f4`..., `*-fast` (10-minute CPU
budget) and the paper's sizes."""

from dataclasses import replace

from ldmkit.autoencoder import AutoencoderConfig, AutoencoderLossConfig
from ldmkit.data.config import DataConfig
from ldmkit.training.config import AutoencoderTrainConfig, OptimConfig, RunConfig

# Small networks for this 2-core CPU: width 16, one residual block per level, norm groups of 8,
# batch 16 in bf16 autocast (measured fastest per image here; see docs/results/autoencoders.md)
# where the CPU runs bf16 natively: "auto" falls back to fp32 where bf16 is emulated (30x slower).
_CPU = AutoencoderConfig(model_channels=16, num_res_blocks=1, norm_groups=8)
_CPU_RUN = RunConfig(
    steps=2800, batch_size=16, precision="auto", image_every=250, checkpoint_every=500
)
_CPU_OPTIM = OptimConfig(
    lr=1e-3, betas=(0.9, 0.99), warmup_steps=100, schedule="cosine", min_lr_ratio=0.05
)


def _cpu(kind: str, channel_mult: tuple[int, ...], z: int) -> AutoencoderTrainConfig:
    model = replace(_CPU, kind=kind, channel_mult=channel_mult, z_channels=z)  # type: ignore[arg-type]
    return AutoencoderTrainConfig(model=model, optim=_CPU_OPTIM, run=_CPU_RUN)


def _fast(
    kind: str, channel_mult: tuple[int, ...], z: int, steps: int, optim: OptimConfig = _CPU_OPTIM
) -> AutoencoderTrainConfig:
    # For a 10-minute CPU budget: a 2x2 space-to-depth stem (no block runs at 64 x 64), width
    # 32 and no GroupNorm (per-image normalisation slowed these small networks ~4 dB at two
    # minutes); `steps` fill about 9.5 minutes here (docs/results/autoencoders.md).
    config = _cpu(kind, channel_mult, z)
    model = replace(config.model, model_channels=32, patch=2, norm_groups=0)
    run = replace(_CPU_RUN, steps=steps, max_minutes=10.0)
    return replace(config, model=model, optim=optim, run=run)


def _paper(kind: str, channel_mult: tuple[int, ...], z: int) -> AutoencoderTrainConfig:
    # Rombach et al. 2022, Tab. 8 / first-stage configs: ch 128, 2 res blocks, LPIPS + GAN.
    model = AutoencoderConfig(
        kind=kind,  # type: ignore[arg-type]
        model_channels=128,
        channel_mult=channel_mult,
        num_res_blocks=2,
        z_channels=z,
        codebook_size=8192 if kind == "vq" else 512,
    )
    return AutoencoderTrainConfig(
        model=model,
        loss=AutoencoderLossConfig(perceptual_weight=1.0, disc_start=50001, disc_weight=0.5),
        data=DataConfig(resolution=256),
        optim=OptimConfig(lr=4.5e-6 * 12, betas=(0.5, 0.9)),
        run=RunConfig(steps=200_000, batch_size=12, image_every=2000, checkpoint_every=5000),
    )


PRESETS: dict[str, AutoencoderTrainConfig] = {
    "tiny": AutoencoderTrainConfig(
        model=AutoencoderConfig(
            model_channels=8, channel_mult=(1, 2), num_res_blocks=1, norm_groups=4, z_channels=3
        ),
        data=DataConfig(resolution=32, size=256),
        optim=OptimConfig(lr=2e-3),
        run=RunConfig(steps=20, batch_size=8, image_every=10, checkpoint_every=10, log_every=5),
    ),
    "kl-f4": _cpu("kl", (1, 2, 4), 3),
    "kl-f8": _cpu("kl", (1, 2, 4, 4), 4),
    "vq-f4": _cpu("vq", (1, 2, 4), 3),
    "vq-f8": _cpu("vq", (1, 2, 4, 4), 4),
    # f = 2 * 2 ** (len(channel_mult) - 1): one level fewer than the presets above.
    "kl-f4-fast": _fast("kl", (1, 2), 3, 4600),
    "kl-f8-fast": _fast("kl", (1, 2, 4), 4, 4000),
    "vq-f4-fast": _fast("vq", (1, 2), 3, 4600),
    # At lr 1e-3 without clipping its codebook collapsed (one code in use) after a loss spike.
    "vq-f8-fast": _fast("vq", (1, 2, 4), 4, 3600, replace(_CPU_OPTIM, lr=5e-4, grad_clip=1.0)),
    # Fashion-MNIST padded to 32x32 (3 x 8 x 8 latents); its LDM is `fmnist-class`.
    "fmnist-kl-f4": replace(
        _cpu("kl", (1, 2, 4), 3), data=DataConfig(kind="fashion-mnist", resolution=32, size=60000)
    ),
    "kl-f4-paper": _paper("kl", (1, 2, 4), 3),
    "kl-f8-paper": _paper("kl", (1, 2, 4, 4), 4),
    "vq-f4-paper": _paper("vq", (1, 2, 4), 3),
    "vq-f8-paper": _paper("vq", (1, 2, 2, 4), 4),
}
