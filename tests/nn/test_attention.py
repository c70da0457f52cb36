"""Attention against a naive softmax, the GEGLU feed-forward, the timestep sinusoid."""

import math

import pytest
import torch

from ldmkit.nn import Attention, FeedForward, SpatialSelfAttention, timestep_embedding


def naive_attention(attn: Attention, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """Per-head softmax(q k^T / sqrt(d)) v with explicit loops, no SDPA."""
    q, k, v = attn.to_q(x), attn.to_k(context), attn.to_v(context)
    heads, d = attn.heads, attn.dim_head
    outs = []
    for head in range(heads):
        sl = slice(head * d, (head + 1) * d)
        weights = torch.softmax(q[..., sl] @ k[..., sl].transpose(-1, -2) / math.sqrt(d), dim=-1)
        outs.append(weights @ v[..., sl])
    return attn.to_out(torch.cat(outs, dim=-1))


@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
def test_attention_matches_naive_softmax(cross: bool) -> None:
    torch.manual_seed(0)
    attn = Attention(24, context_dim=12 if cross else None, heads=3, dim_head=8).eval()
    x = torch.randn(2, 10, 24)
    context = torch.randn(2, 7, 12) if cross else x
    out = attn(x, context if cross else None)
    assert out.shape == (2, 10, 24)
    torch.testing.assert_close(out, naive_attention(attn, x, context), atol=1e-5, rtol=1e-5)


def test_attention_parameter_names_follow_compvis() -> None:
    names = set(Attention(16, 8, heads=2, dim_head=4).state_dict())
    assert names == {
        "to_q.weight",
        "to_k.weight",
        "to_v.weight",
        "to_out.0.weight",
        "to_out.0.bias",
    }
    assert Attention(16, 8, heads=2, dim_head=4).to_k.weight.shape == (8, 8)


def test_attention_rejects_bad_heads() -> None:
    with pytest.raises(ValueError, match="heads"):
        Attention(16, heads=0)


def test_geglu_feed_forward() -> None:
    torch.manual_seed(0)
    ff = FeedForward(8, mult=2)
    assert set(ff.state_dict()) == {
        "net.0.proj.weight",
        "net.0.proj.bias",
        "net.2.weight",
        "net.2.bias",
    }
    x = torch.randn(3, 5, 8)
    value, gate = ff.net[0].proj(x).chunk(2, dim=-1)
    expected = ff.net[2](value * 0.5 * gate * (1 + torch.erf(gate / math.sqrt(2))))
    torch.testing.assert_close(ff(x), expected)
    assert FeedForward(8, dim_out=3)(x).shape == (3, 5, 3)


def test_timestep_embedding_is_cos_then_sin() -> None:
    emb = timestep_embedding(torch.tensor([0, 1]), 4)
    # half = 2 frequencies: 1 and 10000 ** (-1/2) = 0.01.
    golden = torch.tensor(
        [[1.0, 1.0, 0.0, 0.0], [math.cos(1), math.cos(0.01), math.sin(1), math.sin(0.01)]]
    )
    torch.testing.assert_close(emb, golden)
    assert timestep_embedding(torch.tensor([2.5]), 5).shape == (1, 5)
    assert timestep_embedding(torch.tensor([2.5]), 5)[0, -1] == 0
    # Continuous t interpolates the same features.
    assert torch.allclose(
        timestep_embedding(torch.tensor([1.0]), 8), timestep_embedding(torch.tensor([1]), 8)
    )
    with pytest.raises(ValueError, match=r"\(B,\)"):
        timestep_embedding(torch.zeros(2, 1), 4)


def test_every_attention_takes_the_fused_kernel() -> None:
    """SDPA's fused kernel needs 4-d inputs with unit-stride rows; its fallback stores the whole
    T x T weight matrix (34 GB for a 2048x2048 image's decoder). Under the fused kernel alone,
    SDPA raises where the fallback would have been taken."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    attn = Attention(24, context_dim=12, heads=3, dim_head=8).eval()
    spatial = SpatialSelfAttention(16, groups=4).eval()
    for p in spatial.parameters():
        p.data.normal_(0, 0.3)
    x = torch.randn(2, 16, 5, 6)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]), torch.no_grad():
        attn(torch.randn(2, 10, 24), torch.randn(2, 7, 12))
        fused = spatial(x)
    # The same block written out: one head over all channels, 1x1 convolutions, softmax.
    y = spatial.norm(x).flatten(2)
    q, k, v = (
        torch.einsum("oc,bct->bto", p.weight[..., 0, 0], y) + p.bias
        for p in (spatial.q, spatial.k, spatial.v)
    )
    weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(16), dim=-1)
    out = torch.einsum("oc,btc->bot", spatial.proj_out.weight[..., 0, 0], weights @ v)
    expected = x + (out + spatial.proj_out.bias[:, None]).reshape(x.shape)
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-5)
