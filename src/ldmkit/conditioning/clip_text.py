"""Stable-Diffusion-style text conditioning: a frozen, pretrained CLIP text transformer (ViT-L/14's
in SD 1.x, OpenCLIP ViT-H/14's in SD 2.x) whose token states (B, max_length, width) are the
cross-attention context, in place of a tau_theta trained with the UNet. The weights are read
from a local directory (transformers format), never downloaded, and never copied into ldmkit
checkpoints: those store only the ClipTextConfig, whose `path` is read again on every load."""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import CLIPTextModel, CLIPTokenizer

LAYERS = ("last", "penultimate")
# A CLIPTextModel directory, or a whole CLIP (text and vision towers, e.g.
# openai/clip-vit-large-patch14 as SD 1.x used it), whose text tower transformers extracts.
CLIP_MODEL_TYPES = ("clip_text_model", "clip")
LAYOUT_HINT = (
    "a directory holding a transformers CLIPTextModel (config.json and weights) and its "
    "tokenizer (vocab.json and merges.txt, or tokenizer.json), or a Stable Diffusion folder "
    "with text_encoder/ and tokenizer/ sub-folders"
)


@dataclass(frozen=True)
class ClipTextConfig:
    """Where the CLIP text encoder lives, how many tokens it reads, which layer is the context."""

    path: str  # local directory; see LAYOUT_HINT
    max_length: int = 77  # CLIP's context length: SD pads or cuts every prompt to 77 tokens
    # "last": the final layer after the final LayerNorm (SD 1.x); "penultimate": the layer
    # before it, then the final LayerNorm (SD 2.x with the full 24-layer OpenCLIP-H tower).
    # The diffusers SD 2.x text_encoder/ already has its last layer cut (23 layers): use "last".
    layer: Literal["last", "penultimate"] = "last"

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path.strip():
            raise ValueError(f"clip.path must name {LAYOUT_HINT}; got {self.path!r}")
        if self.max_length < 2:
            raise ValueError(
                f"clip.max_length must be >= 2 (start and end tokens), got {self.max_length}"
            )
        if self.layer not in LAYERS:
            raise ValueError(f"clip.layer must be one of {', '.join(LAYERS)}; got {self.layer!r}")


def locate(path: Path) -> tuple[Path, Path]:
    """(model directory, tokenizer directory) in `path`: flat, or the diffusers sub-folders."""
    if not path.is_dir():
        raise FileNotFoundError(f"no CLIP text encoder at {path}: clip.path must be {LAYOUT_HINT}")
    if (path / "config.json").is_file():
        return path, path
    if (path / "text_encoder" / "config.json").is_file():
        return path / "text_encoder", path / "tokenizer"
    raise ValueError(f"{path} holds no CLIP text encoder (no config.json): expected {LAYOUT_HINT}")


def check_model_type(model_dir: Path) -> None:
    """Refuse a config.json of another architecture, which transformers would load with random
    weights and only a warning."""
    try:
        model_type = json.loads((model_dir / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as error:
        raise ValueError(
            f"{model_dir / 'config.json'} is not a readable JSON config: {error}"
        ) from error
    if model_type not in CLIP_MODEL_TYPES:
        raise ValueError(
            f"{model_dir} holds a {model_type!r} model, not a CLIP text encoder (model_type "
            f"{' or '.join(CLIP_MODEL_TYPES)}); clip.path must be {LAYOUT_HINT}"
        )


class ClipTextEncoder(nn.Module):
    """Prompts -> frozen CLIP token states (B, max_length, width), loaded from `config.path`.

    The transformers model is deliberately not a registered submodule: parameters(),
    state_dict() and load_state_dict() see nothing (so checkpoints, optimisers and EMA leave it
    alone, and apply()/requires_grad_() on a parent cannot touch it), while .to()/.cuda()/.half()
    still move it (see _apply). Reach it through `model` if needed."""

    _clip: "CLIPTextModel"

    def __init__(
        self,
        config: ClipTextConfig,
        model: "CLIPTextModel | None" = None,
        tokenizer: "CLIPTokenizer | None" = None,
    ):
        """Loads the encoder and tokenizer from `config.path`, unless both are given (a
        single-file checkpoint's CLIP, built in memory; `config.path` then names that file)."""
        super().__init__()
        if model is None or tokenizer is None:
            model, tokenizer = _load(config)
        model_dir = config.path
        positions = model.config.max_position_embeddings
        if config.max_length > positions:
            raise ValueError(
                f"clip.max_length {config.max_length} exceeds the {positions} positions of the "
                f"CLIP text encoder in {model_dir}"
            )
        if config.layer == "penultimate" and model.config.num_hidden_layers < 2:
            raise ValueError(
                f'clip.layer "penultimate" needs >= 2 layers; {model_dir} has '
                f"{model.config.num_hidden_layers}"
            )
        model.requires_grad_(False)
        object.__setattr__(self, "_clip", model)  # bypasses submodule registration (see above)
        self.tokenizer = tokenizer
        self.config = config
        self.eval()

    @property
    def model(self) -> "CLIPTextModel":
        """The frozen transformers CLIPTextModel."""
        return self._clip

    @property
    def width(self) -> int:
        """Hidden size of the token states (the UNet's `context_dim` must equal it)."""
        return int(self._clip.config.hidden_size)

    def _apply(self, fn: Any, recurse: bool = True) -> "ClipTextEncoder":
        # .to(), .cuda(), .half() etc. all come here; move the unregistered model along.
        self._clip._apply(fn)
        return super()._apply(fn, recurse)  # type: ignore[no-any-return]

    def train(self, mode: bool = True) -> "ClipTextEncoder":
        """Stays in eval mode whatever `mode` says: the encoder is frozen."""
        super().train(False)
        self._clip.eval()
        return self

    def extra_repr(self) -> str:
        return f"path={self.config.path!r}, layer={self.config.layer!r}, width={self.width}"

    def problems(self, prompts: Sequence[str]) -> list[str]:
        """Prompts longer than `max_length` tokens (start and end included), with the point
        where CLIP cuts them."""
        found = []
        for prompt in prompts:
            ids = self.tokenizer(prompt, truncation=False).input_ids
            if len(ids) > self.config.max_length:
                kept = self.tokenizer.decode(ids[1 : self.config.max_length - 1])
                found.append(
                    f"prompt {prompt[:60]!r}: cut to {self.config.max_length} tokens of "
                    f"{len(ids)}, after {kept[-30:]!r}"
                )
        return found

    def forward(self, prompts: Sequence[str]) -> torch.Tensor:
        """Token states (len(prompts), max_length, width) on the model's device and dtype.
        Without gradients unless LoRA adapters on the encoder train (`training/lora.py`); no_grad,
        not inference_mode: the context feeds the UNet's cross-attention during training, and
        autograd refuses to save inference tensors for the backward pass."""
        adapted = any(p.requires_grad for p in self._clip.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and adapted):
            return self._forward(prompts)

    def _forward(self, prompts: Sequence[str]) -> torch.Tensor:
        if isinstance(prompts, str):
            raise TypeError("pass a list of strings, not one string")
        prompts = list(prompts)
        if not prompts:
            raise ValueError("pass at least one prompt ('' is the null prompt)")
        if not all(isinstance(p, str) for p in prompts):
            raise TypeError(
                f"prompts must be strings, got {sorted({type(p).__name__ for p in prompts})}"
            )
        ids = self.tokenizer(
            prompts,
            padding="max_length",
            truncation=True,
            max_length=self.config.max_length,
            return_tensors="pt",
        ).input_ids
        # No attention mask, as in Stable Diffusion: the padding tokens' states are part of the
        # context the UNet was trained with, and causal attention keeps them out of the words'.
        ids = ids.to(next(self._clip.parameters()).device)
        if self.config.layer == "last":
            return self._clip(input_ids=ids).last_hidden_state  # final LayerNorm applied
        # hidden_states: embeddings then each layer's output, before the final LayerNorm.
        hidden = self._clip(input_ids=ids, output_hidden_states=True).hidden_states
        return self._clip.final_layer_norm(hidden[-2])


def _load(config: ClipTextConfig) -> tuple["CLIPTextModel", "CLIPTokenizer"]:
    """The CLIPTextModel and CLIPTokenizer at `config.path` (read offline; errors say why not)."""
    try:
        from transformers import CLIPTextModel, CLIPTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as error:
        raise ImportError(
            "the CLIP text encoder needs transformers: pip install 'ldmkit[clip]'"
        ) from error
    model_dir, tokenizer_dir = locate(Path(config.path))
    check_model_type(model_dir)
    if not any((tokenizer_dir / f).is_file() for f in ("tokenizer.json", "vocab.json")):
        raise FileNotFoundError(
            f"no CLIP tokenizer in {tokenizer_dir} (vocab.json and merges.txt, or "
            f"tokenizer.json); clip.path must be {LAYOUT_HINT}"
        )
    # The load report lists the vision tower's weights as unexpected when `path` is a whole
    # CLIP; missing weights, the case that matters, are checked below instead.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        # float32 whatever the config.json says (transformers 5 defaults to its dtype, often
        # float16 in SD folders); .half() afterwards if wanted.
        model, info = CLIPTextModel.from_pretrained(
            model_dir, local_files_only=True, dtype=torch.float32, output_loading_info=True
        )
    except Exception as error:  # transformers and safetensors raise their own types too
        raise ValueError(f"cannot load a CLIPTextModel from {model_dir}: {error}") from error
    finally:
        hf_logging.set_verbosity(verbosity)
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        raise ValueError(
            f"{model_dir} lacks {len(missing)} CLIP text weights (e.g. {missing[0]}); "
            "transformers would initialise them randomly"
        )
    try:
        tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    except Exception as error:  # the tokenizers library raises its own exception types
        raise ValueError(f"cannot load a CLIP tokenizer from {tokenizer_dir}: {error}") from error
    return model, tokenizer
