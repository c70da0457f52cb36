"""Typed configuration of the perceptual autoencoders (first stage)."""

from dataclasses import dataclass
from typing import Any, Literal

VALID_FACTORS = (1, 2, 4, 8, 16, 32)


@dataclass(frozen=True)
class AutoencoderConfig:
    """Architecture of a KL- or VQ-regularised autoencoder (widths model_channels * channel_mult;
    f = patch * 2 ** (len(channel_mult) - 1)).

    kind "pixel" is no network at all: the latent is the image itself (f = 1), so that pixel-space
    diffusion (the paper's LDM-1 baseline) runs through the same pipeline; see `pixel_space`.
    """

    kind: Literal["kl", "vq", "pixel"] = "kl"
    in_channels: int = 3
    out_channels: int = 3
    model_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    # Self-attention inside the levels whose downsampling factor is listed (the mid block
    # always has one when mid_attention is true).
    attn_factors: tuple[int, ...] = ()
    mid_attention: bool = True
    # Space-to-depth stem: the encoder first folds each patch x patch block of pixels into
    # channels (pixel unshuffle) and the decoder unfolds its output (pixel shuffle), so no block
    # runs at full resolution. 1 = off (the LDM networks); attn_factors count from the patches.
    patch: int = 1
    z_channels: int = 3
    dropout: float = 0.0
    # GroupNorm groups in every block; 0 = no normalisation (identity layers): per-image
    # statistics slow small CPU-sized networks down (docs/results/autoencoders.md).
    norm_groups: int = 32
    # KL: the log-variance is clamped to this range before exponentiation.
    logvar_min: float = -30.0
    logvar_max: float = 20.0
    # VQ: codebook size, commitment cost (beta), dead-code restart threshold (0 = off).
    codebook_size: int = 512
    commitment_beta: float = 0.25
    dead_code_threshold: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.commitment_beta < 0 or self.dead_code_threshold < 0:
            raise ValueError(
                "commitment_beta and dead_code_threshold must be >= 0, got "
                f"{self.commitment_beta} and {self.dead_code_threshold}"
            )
        if self.factor not in VALID_FACTORS:
            raise ValueError(
                f"patch {self.patch} and channel_mult {self.channel_mult} give f={self.factor}; "
                f"choose them so that patch * 2 ** (len(channel_mult) - 1) is one of "
                f"{VALID_FACTORS}"
            )
        for name in ("model_channels", "num_res_blocks", "z_channels", "codebook_size", "patch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.norm_groups < 0:
            raise ValueError(
                f"norm_groups must be >= 0 (0 = no normalisation), got {self.norm_groups}"
            )
        if self.kind == "pixel" and (
            self.factor != 1 or not self.in_channels == self.out_channels == self.z_channels
        ):
            raise ValueError(
                "a pixel-space first stage needs channel_mult=(1,) and z_channels == in_channels "
                f"== out_channels; got channel_mult={self.channel_mult}, z_channels="
                f"{self.z_channels}, in/out {self.in_channels}/{self.out_channels} (use "
                "pixel_space(channels))"
            )
        bad = [
            a for a in self.attn_factors if a not in (2**i for i in range(len(self.channel_mult)))
        ]
        if bad:
            levels = [2**i for i in range(len(self.channel_mult))]
            raise ValueError(f"attn_factors {bad} are not levels of this network {levels}")

    @classmethod
    def upgrade_config(cls, data: dict[str, Any]) -> dict[str, Any]:
        """A config saved with the older width names `ch` / `ch_mult` (the UNet's names now)."""
        for old, new in (("ch", "model_channels"), ("ch_mult", "channel_mult")):
            if old in data:
                if new in data:
                    raise ValueError(f"give {new} or the older {old}, not both")
                data = {new if key == old else key: value for key, value in data.items()}
        return data

    @property
    def factor(self) -> int:
        """Spatial downsampling factor f."""
        return self.patch * 2 ** (len(self.channel_mult) - 1)


def pixel_space(channels: int = 3) -> AutoencoderConfig:
    """The identity first stage: diffusion on the images themselves, in [-1, 1] (LDM-1)."""
    return AutoencoderConfig(
        kind="pixel",
        in_channels=channels,
        out_channels=channels,
        channel_mult=(1,),
        z_channels=channels,
    )
