"""The autoencoder's residual block: without autograd it works in place on its own
intermediates, never on its input, and gives what the training path gives."""

import pytest
import torch

from ldmkit.nn import ResnetBlock


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("groups", [4, 0])  # 0: no norm, the activation's input is x itself
@pytest.mark.parametrize("channels", [(8, 8), (8, 4)])
def test_the_in_place_path_equals_the_training_path_and_keeps_the_input(channels, groups, layout):
    torch.manual_seed(0)
    block = ResnetBlock(*channels, groups=groups).eval()
    x = torch.randn(2, channels[0], 6, 5).contiguous(memory_format=layout)
    kept = x.clone()
    trained = block(x)
    assert trained.requires_grad  # the training path, with its graph
    with torch.no_grad():
        fast = block(x)
    assert torch.equal(x, kept)
    assert fast.is_contiguous(memory_format=layout)
    torch.testing.assert_close(fast, trained.detach(), rtol=1e-5, atol=1e-6)
