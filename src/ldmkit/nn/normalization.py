"""Group normalisation as used throughout the LDM networks."""

from torch import nn


def group_norm(channels: int, groups: int = 32, eps: float = 1e-6) -> nn.GroupNorm | nn.Identity:
    """GroupNorm with `groups` groups (must divide `channels`), affine, eps 1e-6 as in LDM.

    `groups=0` means no normalisation (an identity), for small networks trained briefly.
    """
    if groups == 0:
        return nn.Identity()
    if groups < 0 or channels % groups != 0:
        raise ValueError(
            f"group norm: {channels} channels cannot be split into {groups} groups; "
            "choose norm_groups dividing every channel count (model_channels * channel_mult)"
        )
    return nn.GroupNorm(num_groups=groups, num_channels=channels, eps=eps, affine=True)
