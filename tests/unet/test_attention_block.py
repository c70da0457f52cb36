"""The plain self-attention block against the formula of the ADM / CompVis legacy attention,
written out with explicit einsums (per head: [q, k, v] slices of the fused projection, weights
softmax(q^T k / sqrt(d)))."""

import math

import pytest
import torch

from ldmkit.unet import UNet, UNetConfig
from ldmkit.unet.attention_block import AttentionBlock


def _reference(block: AttentionBlock, x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    heads, d = block.heads, c // block.heads
    qkv = torch.nn.functional.conv1d(
        block.norm(x).reshape(b, c, h * w), block.qkv.weight, block.qkv.bias
    )
    q, k, v = qkv.reshape(b * heads, 3 * d, h * w).split(d, dim=1)
    scale = 1 / math.sqrt(math.sqrt(d))
    weights = torch.einsum("bct,bcs->bts", q * scale, k * scale).softmax(dim=-1)
    out = torch.einsum("bts,bcs->bct", weights, v).reshape(b, c, h * w)
    out = torch.nn.functional.conv1d(out, block.proj_out.weight, block.proj_out.bias)
    return x + out.reshape(b, c, h, w)


@pytest.mark.parametrize("heads", [1, 4])
def test_the_block_computes_legacy_multi_head_attention(heads: int) -> None:
    torch.manual_seed(0)
    block = AttentionBlock(64, heads).eval()
    for p in block.parameters():
        p.data.normal_(0, 0.2)
    x = torch.randn(2, 64, 6, 5)
    torch.testing.assert_close(block(x), _reference(block, x), rtol=1e-5, atol=1e-5)


def test_a_unet_with_plain_attention_has_compvis_names() -> None:
    config = UNetConfig(
        in_channels=3,
        out_channels=3,
        model_channels=32,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_resolutions=(2,),
        num_heads=None,
        num_head_channels=32,
        use_spatial_transformer=False,
    )
    unet = UNet(config)
    names = unet.state_dict()
    assert names["input_blocks.3.1.qkv.weight"].shape == (192, 64, 1)
    assert "middle_block.1.proj_out.weight" in names and "middle_block.1.norm.bias" in names
    assert unet(torch.randn(1, 3, 8, 8), torch.tensor([5])).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="cannot cross-attend"):
        UNetConfig(use_spatial_transformer=False, context_dim=8)


def test_cross_attention_only_levels_read_the_context_in_attn1() -> None:
    config = UNetConfig(
        in_channels=4,
        out_channels=4,
        model_channels=32,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_resolutions=(1, 2),
        num_heads=None,
        num_head_channels=32,
        context_dim=16,
        only_cross_attention=(True, False),
    )
    state = UNet(config).state_dict()
    assert state["input_blocks.1.1.transformer_blocks.0.attn1.to_k.weight"].shape == (32, 16)
    assert state["input_blocks.3.1.transformer_blocks.0.attn1.to_k.weight"].shape == (64, 64)
    assert state["middle_block.1.transformer_blocks.0.attn1.to_k.weight"].shape == (64, 64)
    assert UNetConfig(context_dim=8, only_cross_attention=(False,) * 3).only_cross_attention == ()
    with pytest.raises(ValueError, match="one flag per level"):
        UNetConfig(context_dim=8, only_cross_attention=(True,))


def test_the_block_takes_the_fused_attention_kernel() -> None:
    """Under the fused kernel alone SDPA raises on inputs it cannot take (a token axis without
    unit stride), which would silently fall back to the T^2-memory path everywhere else."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    block = AttentionBlock(64, 4).eval()
    x = torch.randn(1, 64, 8, 8)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]), torch.no_grad():
        torch.testing.assert_close(block(x), _reference(block, x), rtol=1e-5, atol=1e-5)
