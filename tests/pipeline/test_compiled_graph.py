"""The compiled denoiser traces as one graph, compiled once: what its speed-up rests on.

A graph break (dynamo falling back to Python between two compiled pieces) or a recompile at every
sampler step costs the compiled path its speed without changing a single output, so no accuracy
test sees it. A `functools.cache` called inside `WinogradConv2d.forward` once broke the UNet's
graph at every Winograd convolution and lost the whole speed-up silently. These tests record the
graphs dynamo hands to the backend while `LatentDiffusion.sample(compile=True)` runs, and fail on
more than one.
"""

import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import fx

from ldmkit.autoencoder import Autoencoder, AutoencoderConfig
from ldmkit.conditioning import ClassCondition
from ldmkit.nn import WinogradConv2d, native_winograd_available
from ldmkit.pipeline import DiffusionConfig, LatentDiffusion
from ldmkit.pipeline import latent_diffusion as latent_diffusion_module
from ldmkit.pipeline.compiled_denoiser import CompiledDenoiser
from ldmkit.samplers import SamplingOptions
from ldmkit.unet import UNet, unet_preset


class GraphRecorder:
    """A `torch.compile` backend that keeps every graph dynamo hands it and runs it eagerly."""

    def __init__(self) -> None:
        self.graphs: list[fx.GraphModule] = []

    def __call__(self, graph: fx.GraphModule, example_inputs: list[Any]) -> Callable[..., Any]:
        self.graphs.append(graph)
        return graph.forward

    def calls(self, name: str) -> int:
        """How many nodes of the recorded graphs call an operator whose name contains `name`."""
        return sum(
            name in str(node.target)
            for graph in self.graphs
            for node in graph.graph.nodes
            if node.op == "call_function"
        )


def _class_model() -> LatentDiffusion:
    """A tiny class-conditional model (latents 3x16x16: Winograd-sized maps at batch 8)."""
    torch.manual_seed(0)
    ae = Autoencoder(
        AutoencoderConfig(model_channels=8, channel_mult=(1, 2), num_res_blocks=1, norm_groups=4)
    )
    unet = unet_preset("tiny", in_channels=3, out_channels=3, context_dim=None, num_classes=4)
    return LatentDiffusion(
        DiffusionConfig(unet=unet, conditioners=(ClassCondition(num_classes=3),), latent_size=16),
        ae,
    )


@pytest.fixture
def recorder() -> Iterator[GraphRecorder]:
    """A fresh `GraphRecorder`, from a clean dynamo cache."""
    torch._dynamo.reset()
    yield GraphRecorder()
    torch._dynamo.reset()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("winograd", [True, False])
def test_compiled_sampling_is_one_graph_compiled_once(
    recorder: GraphRecorder, monkeypatch: pytest.MonkeyPatch, winograd: bool, precision: str
) -> None:
    model = _class_model()
    monkeypatch.setattr(
        latent_diffusion_module,
        "CompiledDenoiser",
        functools.partial(CompiledDenoiser, backend=recorder, winograd=winograd),
    )
    torch._dynamo.utils.counters.clear()
    labels = torch.tensor([0, 1, 2, 0])
    options = SamplingOptions(steps=4, guidance=2.0, seed=3, compile=True, precision=precision)
    first = model.sample(4, labels, options=options)
    # Four sampler steps, each a different timestep: one graph, traced once, no break.
    assert len(recorder.graphs) == 1, [g.code for g in recorder.graphs[1:2]]
    assert not torch._dynamo.utils.counters["graph_break"]
    # Another call at the same shape reuses it (no recompile per call either).
    again = model.sample(4, labels, options=options)
    assert len(recorder.graphs) == 1
    assert torch.equal(first, again)
    compiled = model._compiled_unet
    assert compiled is not None and compiled.frozen is not None
    swapped = sum(isinstance(m, WinogradConv2d) for m in compiled.frozen.modules())
    assert (swapped > 0) == winograd
    # The C++ operator is in the graph when Winograd runs on it: fp32 outside autocast.
    native = winograd and precision == "fp32" and native_winograd_available()
    assert (recorder.calls("winograd_conv3x3") > 0) == native


def test_compiled_denoiser_with_context_is_one_graph_over_steps(recorder: GraphRecorder) -> None:
    torch.manual_seed(0)
    unet = UNet(unet_preset("tiny", in_channels=4, out_channels=4)).eval()  # cross-attention
    denoiser = CompiledDenoiser(unet, winograd=True, backend=recorder)
    x = torch.randn(2, 4, 32, 32)
    context = torch.randn(2, 7, 32)
    with torch.no_grad():
        for step in (999, 750, 500, 250, 1):  # t changes value every step, never shape
            t = torch.full((2,), step)
            assert torch.allclose(
                denoiser(x, t, context=context), unet(x, t, context=context), atol=1e-4
            )
    assert len(recorder.graphs) == 1
    if native_winograd_available():
        assert recorder.calls("winograd_conv3x3") > 0


def test_fractional_timesteps_compile_once_too(
    recorder: GraphRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Euler calls the model at fractional t (float32): one graph for all its steps, no break.
    model = _class_model()
    monkeypatch.setattr(
        latent_diffusion_module,
        "CompiledDenoiser",
        functools.partial(CompiledDenoiser, backend=recorder),
    )
    torch._dynamo.utils.counters.clear()
    labels = torch.tensor([0, 1])
    options = SamplingOptions("Euler", steps=5, guidance=2.0, compile=True)
    compiled = model.sample(2, labels, options=options)
    assert len(recorder.graphs) == 1 and not torch._dynamo.utils.counters["graph_break"]
    eager = model.sample(2, labels, options=options.replace(compile=False))
    assert torch.allclose(compiled, eager, atol=1e-4)


def test_weights_held_in_bf16_compile_once_without_winograd(
    recorder: GraphRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _class_model()
    model.hold_weights_in("bf16")
    monkeypatch.setattr(
        latent_diffusion_module,
        "CompiledDenoiser",
        functools.partial(CompiledDenoiser, backend=recorder),
    )
    torch._dynamo.utils.counters.clear()
    options = SamplingOptions(steps=3, guidance=2.0, compile=True, precision="bf16")
    model.sample(2, torch.tensor([0, 1]), options=options)
    assert len(recorder.graphs) == 1 and not torch._dynamo.utils.counters["graph_break"]
    compiled = model._compiled_unet
    assert compiled is not None and compiled.frozen is not None
    # Winograd is float32-only: a bf16-held UNet keeps its convolutions.
    assert not any(isinstance(m, WinogradConv2d) for m in compiled.frozen.modules())
    assert all(p.dtype == torch.bfloat16 for p in compiled.frozen.parameters())


def test_the_compiled_copy_shares_the_weights_and_leaves_the_module_as_it_was(
    recorder: GraphRecorder,
) -> None:
    torch.manual_seed(0)
    unet = UNet(unet_preset("tiny", in_channels=4, out_channels=4))  # training mode, grads on
    denoiser = CompiledDenoiser(unet, winograd=True, backend=recorder)
    x, t, context = torch.randn(2, 4, 32, 32), torch.full((2,), 500), torch.randn(2, 7, 32)
    with torch.no_grad():
        denoiser(x, t, context=context)
    assert denoiser.frozen is not None
    # No second set of weights: the copy's tensors alias the module's own storage.
    own = {p.data_ptr() for p in [*unet.parameters(), *unet.buffers()]}
    copied = [*denoiser.frozen.parameters(), *denoiser.frozen.buffers()]
    assert copied and {p.data_ptr() for p in copied} <= own
    assert any(isinstance(m, WinogradConv2d) for m in denoiser.frozen.modules())
    # The module itself is untouched: its convolutions, training mode, gradients, memory format.
    assert not any(isinstance(m, WinogradConv2d) for m in unet.modules())
    assert unet.training and all(p.requires_grad for p in unet.parameters())
    assert all(p.is_contiguous() for p in unet.parameters())
    # Changing a weight in place is seen: the next call compiles afresh and follows it.
    with torch.no_grad():
        unet.out[2].bias.add_(1.0)
        unet.eval()
        torch.testing.assert_close(
            denoiser(x, t, context=context), unet(x, t, context=context), atol=1e-4, rtol=1e-4
        )


@pytest.mark.slow
def test_the_compiled_graph_is_stored_and_loaded_from_the_disk_cache() -> None:
    # What a fast first image after a restart rests on: inductor can store the frozen graph
    # (no prepacked oneDNN weights in it) and a fresh compile of the same model loads it.
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    unet = UNet(unet_preset("tiny", in_channels=4, out_channels=4)).eval()
    x, t, context = torch.randn(1, 4, 16, 16), torch.full((1,), 500), torch.randn(1, 7, 32)
    outputs = []
    for _ in range(2):  # the second time as a new process would: dynamo's memory cleared
        torch._dynamo.reset()
        counters.clear()
        with torch.no_grad():
            outputs.append(CompiledDenoiser(unet, winograd=True)(x, t, context=context))
        assert not counters["inductor"]["fxgraph_cache_bypass"]
    assert counters["inductor"]["fxgraph_cache_hit"] == 1
    torch.testing.assert_close(outputs[1], outputs[0])
    with torch.no_grad():
        torch.testing.assert_close(outputs[0], unet(x, t, context=context), atol=1e-4, rtol=1e-4)
    torch._dynamo.reset()
