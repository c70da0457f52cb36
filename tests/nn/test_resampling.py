"""The autoencoder's upsampling: its inference path (four 2x2 convolutions of the input) equals
the nearest x2 upsampling followed by the 3x3 convolution, in both memory layouts."""

import pytest
import torch
import torch.nn.functional as F

from ldmkit.nn import Upsample
from ldmkit.nn.resampling import upsample_conv


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("shape", [(2, 6, 5, 7), (1, 3, 1, 1), (1, 16, 8, 3)])
def test_upsample_conv_equals_upsampling_then_convolving(shape, layout):
    torch.manual_seed(0)
    x = torch.randn(shape).contiguous(memory_format=layout)
    conv = torch.nn.Conv2d(shape[1], 4, 3, padding=1)
    with torch.no_grad():
        expected = conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        got = upsample_conv(x, conv.weight, conv.bias)
    assert got.shape == expected.shape
    if shape[2] * shape[3] > 1:  # a 1x1 input is contiguous in both layouts
        assert got.is_contiguous(memory_format=layout)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_upsample_takes_the_folded_path_only_without_autograd(monkeypatch):
    """Training keeps the plain upsample + convolution (its gradients); inference folds."""
    torch.manual_seed(0)
    module, x = Upsample(4), torch.randn(1, 4, 6, 6)
    calls = []
    import ldmkit.nn.resampling as resampling

    real = resampling.upsample_conv
    monkeypatch.setattr(resampling, "upsample_conv", lambda *a: calls.append(1) or real(*a))
    trained = module(x.requires_grad_())
    trained.sum().backward()
    assert calls == [] and x.grad is not None
    with torch.no_grad():
        folded = module(x)
    assert calls == [1]
    torch.testing.assert_close(folded, trained.detach(), rtol=1e-5, atol=1e-5)


def test_upsample_conv_in_bfloat16_stays_close():
    torch.manual_seed(0)
    x = torch.randn(1, 8, 6, 6)
    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    with torch.no_grad():
        expected = conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        got = upsample_conv(x.bfloat16(), conv.weight.bfloat16(), conv.bias.bfloat16())
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected, rtol=0.05, atol=0.05)
