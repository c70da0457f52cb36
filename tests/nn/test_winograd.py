import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ldmkit.nn import (
    WinogradConv2d,
    native_winograd_available,
    use_winograd,
    winograd_conv3x3,
    winograd_kernel,
)
from ldmkit.nn import winograd as winograd_module
from ldmkit.nn.winograd import winograd_conv3x3_torch


@pytest.fixture(scope="module")
def native() -> None:
    """The C++ operator, built on first use (needs g++, as `torch.compile` on the CPU does)."""
    if not native_winograd_available():
        pytest.skip("no C++ compiler to build ldmkit::winograd_conv3x3")


# (3, 6, 30, 26) has 168 tiles: the C++ operator's blocked path, with a partial last block.
SHAPES = [(2, 5, 8, 8), (1, 3, 7, 10), (1, 4, 1, 2), (3, 6, 13, 5), (3, 6, 30, 26)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("implementation", ["native", "torch"])
def test_winograd_equals_direct_convolution(
    shape: tuple[int, ...], channels_last: bool, implementation: str, request
) -> None:
    if implementation == "native":
        request.getfixturevalue("native")
    conv3x3 = winograd_conv3x3 if implementation == "native" else winograd_conv3x3_torch
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(7, shape[1], 3, 3, generator=g)
    bias = torch.randn(7, generator=g)
    reference = F.conv2d(x, weight, bias, padding=1)
    out = conv3x3(x, winograd_kernel(weight), bias)
    assert out.shape == reference.shape
    scale = float(reference.abs().max())
    assert float((out - reference).abs().max()) < 1e-5 * scale
    no_bias = conv3x3(x, winograd_kernel(weight))
    assert torch.allclose(no_bias, F.conv2d(x, weight, padding=1), atol=1e-5 * scale)


def test_winograd_module_shares_weights_and_falls_back_outside_fp32(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = winograd_module.winograd_conv3x3

    def counted(*args: torch.Tensor | None, **kwargs: bool) -> torch.Tensor:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(winograd_module, "winograd_conv3x3", counted)
    conv = nn.Conv2d(4, 6, 3, padding=1)
    module = WinogradConv2d(conv, min_tiles=1)
    assert module.weight is conv.weight and module.bias is conv.bias
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        assert torch.allclose(module(x), conv(x), atol=1e-5)
        assert len(calls) == 1  # the Winograd path ran
        # fewer 4x4 output tiles than min_tiles (here 2 x 3 x 3 = 18) take the direct one
        assert torch.equal(WinogradConv2d(conv, min_tiles=19)(x), conv(x))
        # CPU autocast and bf16 weights and inputs take the direct convolution: equal exactly
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(module(x), conv(x))
        conv.bfloat16()  # the shared parameters convert with it
        assert torch.equal(module(x.bfloat16()), conv(x.bfloat16()))
        assert len(calls) == 1  # none of the fallbacks called it


def test_use_winograd_replaces_only_wide_plain_3x3_convolutions() -> None:
    model = nn.Sequential(
        nn.Conv2d(32, 32, 3, padding=1),  # replaced
        nn.Conv2d(32, 32, 3, stride=2, padding=1),  # strided
        nn.Sequential(nn.Conv2d(32, 32, 1), nn.Conv2d(32, 32, 3, padding=1)),  # 1x1, replaced
        nn.Conv2d(32, 8, 3, padding=1),  # too narrow
        nn.Conv2d(8, 8, 3, padding=1, groups=2),  # grouped
    )
    x = torch.randn(1, 32, 12, 12)
    with torch.no_grad():
        before = model(x)
        assert use_winograd(model, min_tiles=1) == 2
        after = model(x)
    assert isinstance(model[0], WinogradConv2d) and isinstance(model[2][1], WinogradConv2d)
    assert type(model[1]) is nn.Conv2d and type(model[3]) is nn.Conv2d
    assert torch.allclose(before, after, atol=1e-5)
    with pytest.raises(ValueError, match="stride 1, padding 1"):
        WinogradConv2d(nn.Conv2d(4, 4, 3, stride=2, padding=1))


@pytest.mark.slow
@pytest.mark.parametrize("path", ["native", "default", "torch ops"])
def test_compiled_denoiser_with_winograd_matches_eager(path: str, monkeypatch) -> None:
    from ldmkit.pipeline.compiled_denoiser import CompiledDenoiser

    if path == "torch ops":  # as on a GPU, or on a CPU without a C++ compiler
        monkeypatch.setattr(winograd_module, "native_winograd_available", lambda: False)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.GroupNorm(8, 32), nn.SiLU(), nn.Conv2d(32, 32, 3, padding=1), nn.SiLU()
    ).eval()
    x = torch.randn(1, 32, 32, 32)  # 64 output tiles: above both paths' default min_tiles
    with torch.no_grad():
        compiled = CompiledDenoiser(model, winograd=None if path == "default" else True)(x)
        eager = model(x)
    assert torch.allclose(compiled, eager, atol=1e-5)
    assert type(model[2]) is nn.Conv2d  # the caller's module is left as it was


def test_native_operator_is_channels_last_and_refuses_bad_input(native: None) -> None:
    x = torch.randn(2, 8, 20, 20)
    kernel = winograd_kernel(torch.randn(4, 8, 3, 3))
    out = torch.ops.ldmkit.winograd_conv3x3(x, kernel, None)
    assert out.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(RuntimeError, match="fp32 only"):
        torch.ops.ldmkit.winograd_conv3x3(x.double(), kernel.double(), None)
    with pytest.raises(RuntimeError, match=r"kernel must be \(36, C_in, C_out\) with C_in = 8"):
        torch.ops.ldmkit.winograd_conv3x3(x, kernel[:, :4], None)
    with pytest.raises(RuntimeError, match="bias must have 4 elements"):
        torch.ops.ldmkit.winograd_conv3x3(x, kernel, torch.zeros(3))


def test_native_build_failure_names_the_compiler(tmp_path, monkeypatch) -> None:
    from ldmkit.nn.native import build_native

    monkeypatch.setenv("CXX", "false")  # a "compiler" that always fails
    with pytest.raises(RuntimeError, match="building ldmkit's C\\+\\+ operators with false"):
        build_native(tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-built left behind
