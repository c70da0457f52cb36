"""Typed configuration of the denoiser UNet (the CompVis `openaimodel.UNetModel` family)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the denoising UNet; level i works at 1 / 2**i of the input resolution."""

    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    # Spatial transformers at the levels whose *downsampling factor* is listed (1 = full
    # resolution), as in the LDM configs; the middle block always has one.
    attention_resolutions: tuple[int, ...] = (2, 4)
    # Exactly one of the two: a fixed number of heads, or a fixed width per head.
    num_heads: int | None = None
    num_head_channels: int | None = 32
    transformer_depth: int = 1
    # Width of the conditioning tokens for cross-attention; None = self-attention only.
    context_dim: int | None = None
    # Fourier features (this many frequencies) of each token's (x, y), projected and added to
    # the spatial transformers' tokens, so cross-attention queries know where they are (layout
    # models); 0 = off, as in LDM and Stable Diffusion.
    position_frequencies: int = 0
    # Linear (SD 2) rather than 1x1-conv (LDM, SD 1) proj_in / proj_out in the transformers.
    use_linear_in_transformer: bool = False
    # False: plain self-attention blocks (`unet/attention_block.py`) instead of spatial
    # transformers at the attention levels, as the CompVis unconditional and SR models have.
    use_spatial_transformer: bool = True
    # Per level: its transformers attend to the context in attn1 too, with no self-attention
    # (CompVis `disable_self_attentions`, diffusers `only_cross_attention`; the x4 upscaler's
    # outer three levels). Empty: none; the middle block always self-attends.
    only_cross_attention: tuple[bool, ...] = ()
    # Class labels 0..num_classes-1 embedded and added to the timestep embedding; None = off.
    # Reserve one index for the null class when training for classifier-free guidance.
    num_classes: int | None = None
    resblock_updown: bool = False
    # FiLM-style norm(h) * (1 + scale) + shift from the timestep embedding (Dhariwal & Nichol).
    use_scale_shift_norm: bool = False
    dropout: float = 0.0
    # In training mode, recompute ResBlocks and transformers in the backward pass: less memory
    # for activations, one extra forward of those blocks.
    use_checkpoint: bool = False
    norm_groups: int = 32
    conv_resample: bool = True

    def __post_init__(self) -> None:
        # Plain lists (from YAML or JSON) become tuples so the config stays hashable; the
        # attention factors are a set, kept sorted so equal networks have equal configs.
        object.__setattr__(self, "channel_mult", tuple(self.channel_mult))
        object.__setattr__(self, "attention_resolutions", tuple(sorted(self.attention_resolutions)))
        flags = tuple(bool(f) for f in self.only_cross_attention)
        object.__setattr__(self, "only_cross_attention", flags if any(flags) else ())
        positive = (
            "in_channels",
            "out_channels",
            "model_channels",
            "num_res_blocks",
            "transformer_depth",
            "norm_groups",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise ValueError(
                f"channel_mult must be a non-empty tuple of positive ints, got {self.channel_mult}"
            )
        if self.position_frequencies < 0:
            raise ValueError(f"position_frequencies must be >= 0, got {self.position_frequencies}")
        if self.only_cross_attention and (
            len(self.only_cross_attention) != len(self.channel_mult) or self.context_dim is None
        ):
            raise ValueError(
                "only_cross_attention needs one flag per level (channel_mult) and a context_dim; "
                f"got {self.only_cross_attention}"
            )
        if not self.use_spatial_transformer and self.context_dim is not None:
            raise ValueError(
                "use_spatial_transformer=False gives plain self-attention blocks, which cannot "
                "cross-attend: set context_dim=None, or use spatial transformers"
            )
        for name in ("context_dim", "num_classes", "num_heads", "num_head_channels"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be None or >= 1, got {value}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if (self.num_heads is None) == (self.num_head_channels is None):
            raise ValueError(
                "set exactly one of num_heads (heads per transformer) or num_head_channels "
                f"(channels per head); got num_heads={self.num_heads}, "
                f"num_head_channels={self.num_head_channels}"
            )
        levels = self.factors
        bad = [a for a in self.attention_resolutions if a not in levels]
        if bad:
            raise ValueError(
                f"attention_resolutions {bad} are not downsampling factors of this network; "
                f"choose from {levels} (one per entry of channel_mult)"
            )
        for factor, mult in zip(levels, self.channel_mult, strict=True):
            channels = self.model_channels * mult
            if channels % self.norm_groups:
                raise ValueError(
                    f"norm_groups={self.norm_groups} does not divide the {channels} channels of "
                    f"level {factor}x; choose norm_groups dividing model_channels * every "
                    "channel_mult"
                )
            if factor in self.attention_resolutions or factor == levels[-1]:
                self.heads_at(channels)
        if self.model_channels % self.norm_groups:
            raise ValueError(
                f"norm_groups={self.norm_groups} does not divide model_channels="
                f"{self.model_channels}"
            )

    @property
    def factors(self) -> tuple[int, ...]:
        """Downsampling factor of every level: (1, 2, 4, ...)."""
        return tuple(2**i for i in range(len(self.channel_mult)))

    @property
    def factor(self) -> int:
        """Total downsampling factor; inputs must have H and W divisible by it."""
        return self.factors[-1]

    def heads_at(self, channels: int) -> tuple[int, int]:
        """(heads, dim_head) of a transformer over `channels` channels."""
        if self.num_heads is not None:
            if channels % self.num_heads:
                raise ValueError(
                    f"num_heads={self.num_heads} does not divide the {channels} channels of a "
                    "transformer level; choose num_heads dividing model_channels * channel_mult "
                    "at every attention level and the last level, or set num_head_channels"
                )
            return self.num_heads, channels // self.num_heads
        assert self.num_head_channels is not None  # checked in __post_init__
        if channels % self.num_head_channels:
            raise ValueError(
                f"num_head_channels={self.num_head_channels} does not divide the {channels} "
                "channels of a transformer level; choose a width dividing model_channels * "
                "channel_mult at every attention level and the last level, or set num_heads"
            )
        return channels // self.num_head_channels, self.num_head_channels
