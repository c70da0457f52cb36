"""The conditioner protocol: one way a condition y reaches the denoiser (Rombach et al. 2022, 3.3).

Each conditioning mode (a class label, a caption through a trained or a frozen text encoder, a
layout, a spatially aligned map) is one `Conditioner` with the same small surface:

- `input_name`: the keyword its values arrive under (`LatentDiffusion.sample(prompts=...)`);
- `encode(values, n, device)`: those values, checked, as a `Conditioning` for the denoiser;
- `null(cond, n, device)`: its null condition, the unconditional branch of guidance;
- `training_condition(batch, generators)`: a training batch's condition with its dropout
  applied, each sample's draws from its own generator (so a split batch draws the same);
- `trained_module()`, `weights_file`: what it trains with the UNet and where a checkpoint keeps it;
- `preview(items, ...)`: what a training snapshot samples with for its first items, and shows.

The pipeline holds a list of conditioners and merges their outputs; hybrid conditioning (a class
or a caption by cross-attention plus a map by concatenation) is two entries. A new mode is one
file with a subclass and its config (a `ConditionerConfig` with a `kind` tag, whose `build`
makes the conditioner) plus the config's entry in `ldmkit.conditioning.registry`; captions share
`PromptConditioner` (`prompt.py`).
"""

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

# What the denoiser takes, any key absent: "y" class labels (B,), "context" cross-attention
# tokens (B, M, d), "concat" channels concatenated with z_t (B, k, h, w).
Conditioning = dict[str, torch.Tensor]
KEYS = ("y", "context", "concat")
Items = Sequence[Mapping[str, Any]]  # training items: {"image", "caption", "layout", ...}
Generators = Sequence[torch.Generator]  # one per sample


@dataclass
class Preview:
    """What a training snapshot samples with for one conditioner (`values`, passed under its
    `input_name`) and the pictures it shows in rows around the samples."""

    values: Any
    above: torch.Tensor | None = None  # (n, 3, H, W) in [-1, 1]: a map's input, degraded
    below: torch.Tensor | None = None  # the originals it was made from


class Conditioner(nn.Module, ABC):
    """One conditioning mode: its values in, a `Conditioning` out, and its null condition."""

    kind: ClassVar[str]  # the tag that names it in configs and messages
    input_name: ClassVar[str]  # the keyword its values arrive under, e.g. "prompts"
    description: ClassVar[str]  # for messages: "text-conditional"
    # Whether guidance nulls it when another conditioner guides too; a spatial map is kept in
    # both branches of a hybrid model, which is guided by its class or caption.
    nulled_in_hybrid: ClassVar[bool] = True
    # The checkpoint file of `trained_module()`'s weights, when it has one.
    weights_file: str | None = None
    # Whether training batches must carry the images (not only cached latents).
    reads_images: ClassVar[bool] = False
    # At most this many samples in a training snapshot (its rows of pictures are wide).
    max_preview: ClassVar[int | None] = None

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{self.kind} dropout must be in [0, 1), got {dropout}")
        self.dropout = dropout

    @abstractmethod
    def encode(self, values: Any, n: int, device: torch.device) -> Conditioning:
        """`n` values (labels, prompts, ...), checked, as the denoiser's inputs on `device`."""

    @abstractmethod
    def null(self, cond: Conditioning, n: int, device: torch.device) -> Conditioning:
        """The null condition for `n` samples (guidance's unconditional branch), given `cond`."""

    @abstractmethod
    def training_condition(
        self, batch: dict[str, Any], generators: Sequence[torch.Generator] | None
    ) -> Conditioning:
        """The condition of a training batch, a `dropout` fraction replaced by the null one."""

    @property
    def name(self) -> str:
        """How messages name it (its `kind`, or a finer one)."""
        return self.kind

    @property
    def can_guide(self) -> bool:
        """Whether its null condition was trained (guidance other than 1 needs it)."""
        return True

    def guide_hint(self) -> str:
        """How to get a null condition when `can_guide` is false."""
        return ""

    def concat_channels(self, z_channels: int) -> int:
        """Channels it concatenates with a latent of `z_channels` (0: none)."""
        return 0

    def trained_module(self) -> nn.Module | None:
        """The network trained jointly with the UNet (tau_theta), if any."""
        return None

    def latent_size(self, values: Any) -> tuple[int, int] | None:
        """The latent side its values fix (a map's), or None."""
        return None

    @abstractmethod
    def preview(self, items: Items, generators: Generators, device: torch.device) -> Preview:
        """What a training snapshot samples with for these first training items."""

    def annotate(self, images: torch.Tensor, values: Any) -> torch.Tensor:
        """The sampled images as a snapshot shows them (layouts draw their boxes)."""
        return images

    def resource(self) -> Any:
        """What it was built with from `BuildContext.loaded` (a tokenizer, a loaded encoder),
        to build it again without loading; None when nothing."""
        return None

    def save_files(self, directory: Any) -> None:
        """Write what it needs besides `trained_module()`'s weights (a tokenizer) to a
        checkpoint folder."""

    def dropped(self, generators: Sequence[torch.Generator] | None, n: int) -> list[bool]:
        """Which of `n` training samples get the null condition: one draw from each generator
        (or from the global generator without them)."""
        if generators is None:
            draws = torch.rand(n).tolist()
        else:
            draws = [float(torch.rand(1, generator=g)) for g in generators]
        return [draw < self.dropout for draw in draws]

    def check_count(self, values: Sequence[Any] | torch.Tensor | None, n: int) -> None:
        """Raise a ValueError unless `values` holds one value for each of `n` samples."""
        if values is None or len(values) != n:
            raise ValueError(f"this model is {self.description}: pass {n} {self.input_name}")


@dataclass(frozen=True)
class BuildContext:
    """What building a conditioner may take besides its config: the first stage's encoder and
    factor (for maps of images), the UNet's cross-attention width, and what was loaded
    elsewhere, by conditioner kind (a text model's tokenizer from its checkpoint, a frozen CLIP
    already in memory)."""

    encode_images: Callable[[torch.Tensor], torch.Tensor]
    factor: int
    context_dim: int | None = None
    loaded: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ConditionerConfig(ABC):
    """A conditioner's config: its `kind` tag (each subclass narrows it to one `Literal`), the
    training dropout that teaches its null condition, and how it is built."""

    kind: str
    dropout: float = 0.1
    # The denoiser input it fills ("y", "context" or "concat"); one conditioner per input.
    output: ClassVar[str]

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{self.kind} dropout must be in [0, 1), got {self.dropout}")

    @abstractmethod
    def build(self, context: BuildContext) -> Conditioner:
        """The conditioner this config describes."""

    def fills(self) -> tuple[str, ...]:
        """Every denoiser input it fills: its `output`, and any it fills besides."""
        return (self.output,)

    def check_unet(self, context_dim: int | None, class_rows: int | None) -> None:
        """Raise a ValueError naming the UNet field to set unless the UNet (cross-attention
        width `context_dim`, `class_rows` class embeddings) takes this conditioner's output."""
        return None

    def load_files(self, directory: Any) -> Any:
        """What the conditioner's `save_files` wrote to a checkpoint folder, for
        `BuildContext.loaded` (None: it writes nothing)."""
        return None

    def prepare_training(
        self, run_dir: Any, data: Sequence[Mapping[str, Any]], data_name: str, fresh: bool
    ) -> None:
        """Before training (main process): check that `data` (named `data_name` in messages)
        carries this condition and write what `load_files(run_dir)` then reads (a tokenizer
        learned on the captions); `fresh` false keeps what a resumed run already wrote."""
        return None
