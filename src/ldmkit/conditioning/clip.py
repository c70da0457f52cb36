"""Captions through a frozen CLIP text encoder (Stable Diffusion style), read from a local
directory; nothing is trained or copied into checkpoints (the config names the directory)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from ldmkit.conditioning.clip_text import ClipTextConfig, ClipTextEncoder
from ldmkit.conditioning.conditioner import BuildContext, ConditionerConfig
from ldmkit.conditioning.prompt import PromptConditioner, captions

CLIP_DIR = "clip"  # where a checkpoint keeps a CLIP that has no folder of its own


@dataclass(frozen=True, kw_only=True)
class ClipCondition(ConditionerConfig):
    """Captions through a frozen CLIP text encoder read from `encoder.path`; `dropout` (caption
    dropout) trains the empty prompt as the null condition."""

    kind: Literal["clip"] = "clip"
    encoder: ClipTextConfig
    output: ClassVar[str] = "context"

    def build(self, context: BuildContext) -> "ClipConditioner":
        """A `ClipConditioner`, reusing a CLIP loaded under "clip"; its width must be the
        UNet's cross-attention width."""
        conditioner = ClipConditioner(self.encoder, self.dropout, context.loaded.get(self.kind))
        if conditioner.width != context.context_dim:
            raise ValueError(
                f"the CLIP text encoder at {self.encoder.path} has width {conditioner.width}; "
                f"set unet.context_dim={conditioner.width} (it is {context.context_dim})"
            )
        return conditioner

    def check_unet(self, context_dim: int | None, class_rows: int | None) -> None:
        """The UNet must cross-attend (its width is checked against CLIP's when built)."""
        if context_dim is None:
            raise ValueError("clip conditioning needs unet.context_dim = the CLIP hidden size")

    def load_files(self, directory: Any) -> ClipTextEncoder | None:
        """The CLIP a checkpoint carries in `clip/` (one built from a single file, which has
        no folder of its own to name), else None: read from `encoder.path`."""
        folder = Path(directory) / CLIP_DIR
        if not (folder / "config.json").is_file():
            return None
        return ClipTextEncoder(replace(self.encoder, path=str(folder)))

    def prepare_training(
        self, run_dir: Any, data: Sequence[Mapping[str, Any]], data_name: str, fresh: bool
    ) -> None:
        """Nothing to write (CLIP is frozen and read from its directory), but the data must
        carry captions."""
        captions(data, data_name)


class ClipConditioner(PromptConditioner):
    """Prompts -> frozen CLIP token states (B, max_length, width) as context."""

    kind = "clip"

    def __init__(
        self, config: ClipTextConfig, dropout: float = 0.1, encoder: ClipTextEncoder | None = None
    ):
        """`encoder` reuses an already loaded CLIP (else `config` is loaded)."""
        super().__init__(dropout)
        self.clip = encoder if encoder is not None else ClipTextEncoder(config)

    def problems(self, prompts: Sequence[str]) -> list[str]:
        """Prompts CLIP cuts (`ClipTextEncoder.problems`)."""
        return self.clip.problems(prompts)

    def resource(self) -> ClipTextEncoder:
        """The loaded CLIP."""
        return self.clip

    def save_files(self, directory: Any) -> None:
        """Nothing for a CLIP read from a folder (the config names it); one built from a single
        file (its `path` names that file) goes to `clip/`, so the checkpoint loads alone."""
        if Path(self.clip.config.path).is_dir():
            return
        self.clip.model.save_pretrained(Path(directory) / CLIP_DIR)
        self.clip.tokenizer.save_pretrained(Path(directory) / CLIP_DIR)

    @property
    def width(self) -> int:
        """The context's width (the UNet's `context_dim` must equal it)."""
        return self.clip.width

    def context(self, prompts: Sequence[str]) -> torch.Tensor:
        """CLIP's token states of `prompts`."""
        return self.clip(prompts)
