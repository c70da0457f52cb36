"""The denoiser compiled for sampling: `torch.compile` with inductor freezing, channels-last.

Sampling calls one network at one shape for every step, so a graph compiled once pays back over
the steps. Freezing folds the weights into the graph as constants (convolution and linear weights
prepacked for oneDNN / MKL on the CPU), and channels-last spares oneDNN the layout reorders around
each convolution. Measured in `docs/results/latent_diffusion.md`.

A frozen graph no longer reads the module's parameters, so `CompiledDenoiser` compiles a copy
of the module's structure (its convolutions swapped for Winograd ones, the module left as it
was) that shares the module's weight tensors rather than a second set of them, and builds a new
one whenever a parameter of the original was changed in place (training between samples,
loading a state dict): each tensor's version counter is the fingerprint.
"""

import copy
import os
from typing import Any

import torch
import torch._dynamo.config as dynamo_config
import torch._inductor.config as inductor_config
from torch import nn

from ldmkit.nn import native_winograd_available, use_winograd
from ldmkit.nn.native import cache_root

RECOMPILE_LIMIT = 64


def _fingerprint(module: nn.Module) -> tuple[tuple[int, int], ...]:
    """Identity and in-place version of every parameter and buffer: changes when weights do."""
    tensors = [*module.parameters(), *module.buffers()]
    return tuple((id(tensor), tensor._version) for tensor in tensors)


def use_ldmkit_cache() -> None:
    """Inductor's on-disk cache under ldmkit's cache folder (it survives reboots, unlike
    inductor's default in /tmp), unless `TORCHINDUCTOR_CACHE_DIR` is set already."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_root() / "inductor"))


def shared_copy(module: nn.Module) -> nn.Module:
    """A copy of `module`'s tree of modules whose parameters and buffers alias the original's
    storage (new tensor objects, no weight copied, no gradients): its modules can be swapped or
    switched to eval without touching the original. New objects, because dynamo's guards know
    tensors by identity: a copy holding the very same ones would reuse a graph frozen with
    the weights' earlier values."""
    memo: dict[int, Any] = {id(p): nn.Parameter(p.detach(), False) for p in module.parameters()}
    memo |= {id(b): b.detach() for b in module.buffers()}
    return copy.deepcopy(module, memo=memo)


class CompiledDenoiser:
    """Calls `module(x, *args, **kwargs)` through a frozen, channels-last compiled copy.

    The copy is compiled per input shape (`dynamic=False`: one graph per batch and latent size,
    which a sampler keeps fixed); the first call at a shape takes the compile time (tens of
    seconds on a small CPU). Use it under `torch.no_grad()` and only for inference. Its copy
    shares the module's weights; the compiled graph holds their prepacked forms (about the
    weights' size again, for the convolutions and linears). Writes through `param.data` bypass
    the version counter it watches: after those, make a new `CompiledDenoiser`.

    `winograd` computes the copy's wide 3x3 convolutions by Winograd F(4x4, 3x3)
    (`ldmkit.nn.winograd`; fp32 only, results within about 1e-5 relative of direct convolution;
    under autocast they stay direct). `None` (the default) turns it on for a module on the CPU
    where the C++ operator builds (`native_winograd_available()`): there each such convolution
    is one opaque call that beat oneDNN's by 1.8-2.6x on a 2-core AVX2 CPU, and made the
    compiled UNet 1.06-1.39x faster (docs/results/latent_diffusion.md, "Winograd as a C++
    operator"). The first call builds the operator (about 13 s, then cached). `True` forces it,
    on other devices through torch operators, which inductor fuses less well; `False` turns it
    off.

    `cache` (the default) keeps the compiled graph in inductor's on-disk cache, under
    `~/.cache/ldmkit/inductor` (or `$LDMKIT_CACHE`) unless `TORCHINDUCTOR_CACHE_DIR` names
    another place: a later process compiling the same model (same graph, same weights) loads
    it instead, which cut an SD 1.5 UNet's first call from 96 to 47 s in fp32 and from 82 to
    29 s in bf16 on a 2-core AVX-512 CPU. That needs inductor's weight prepacking off (its
    packed oneDNN weights cannot be stored), which cost 1.6% per step there; `cache=False`
    prepacks, for a long-running process that compiles once (docs/results/sd_scale.md).

    `backend` is `torch.compile`'s (inductor by default; freezing and the C++ wrapper are
    inductor's). The whole denoiser must trace as one graph, compiled once per shape: a graph
    break or a recompile per step silently costs the speed-up, and
    `tests/pipeline/test_compiled_graph.py` counts both through this argument.
    """

    def __init__(
        self,
        module: nn.Module,
        winograd: bool | None = None,
        backend: Any = "inductor",
        cache: bool = True,
    ):
        self.module = module
        self.winograd = winograd
        self.backend = backend
        self.cache = cache
        if cache:
            use_ldmkit_cache()
        self.frozen: nn.Module | None = None  # the copy that is compiled (shared weights)
        self._key: tuple[tuple[int, int], ...] | None = None
        self._compiled: Any = None

    def _current(self) -> Any:
        key = _fingerprint(self.module)
        if key != self._key:
            frozen = shared_copy(self.module).eval()
            if self._use_winograd(frozen):
                use_winograd(frozen)
            self.frozen = frozen
            self._compiled = torch.compile(frozen, dynamic=False, backend=self.backend)
            self._key = key
        return self._compiled

    def _use_winograd(self, module: nn.Module) -> bool:
        if self.winograd is not None:
            return self.winograd
        on_cpu = all(p.device.type == "cpu" for p in module.parameters())
        fp32 = all(p.dtype == torch.float32 for p in module.parameters())  # its one precision
        return on_cpu and fp32 and native_winograd_available()

    def __call__(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The module's output for x (B, C, H, W), computed by the compiled copy."""
        if torch.is_grad_enabled():
            raise RuntimeError(
                "CompiledDenoiser is for sampling: call it under torch.no_grad() (its frozen "
                "weights take no gradients)"
            )
        x = x.contiguous(memory_format=torch.channels_last)
        # Compiles happen lazily, at the first call of each shape, so the settings are patched
        # around every call: freezing (`torch.compile(options={"freezing": True})` does not
        # reach it); on the CPU a C++ wrapper around the kernels (1-10% faster here, most at
        # batch 1; see docs/results/latent_diffusion.md); and one graph per shape and dtype past
        # dynamo's default of 8 per function, beyond which it would fall back to eager without
        # saying so.
        with (
            inductor_config.patch(
                freezing=True,
                cpp_wrapper=x.device.type == "cpu",
                **{"cpp.weight_prepack": not self.cache},
            ),
            dynamo_config.patch(recompile_limit=RECOMPILE_LIMIT),
        ):
            return self._current()(x, *args, **kwargs).contiguous()
