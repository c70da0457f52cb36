"""The frozen CLIP text encoder, on a tiny random CLIP written to disk in both layouts: shapes,
determinism, the SD 2.x penultimate layer, freezing, and errors that say what was expected."""

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ldmkit.conditioning.clip_text import ClipTextConfig, ClipTextEncoder

transformers = pytest.importorskip(
    "transformers", reason="the CLIP encoder needs the clip extra: pip install 'ldmkit[clip]'"
)

WIDTH = 32  # the tiny_clip fixture's (tests/conftest.py)
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json")


def copy_tokenizer(source: Path, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, directory / name)


@pytest.fixture(scope="module")
def clip_dirs(tiny_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny random CLIP (conftest) saved flat (model and tokenizer together), in the
    diffusers layout with the `text_model.` weight names of real SD checkpoints, and inside a
    whole CLIP; plus broken directories: one with a weight missing, one of another
    architecture."""
    root = tmp_path_factory.mktemp("clip-layouts")
    shutil.copytree(tiny_clip, root / "flat")
    copy_tokenizer(tiny_clip, root / "sd" / "tokenizer")
    model = transformers.CLIPTextModel.from_pretrained(tiny_clip, local_files_only=True)
    config = model.config
    model.save_pretrained(root / "sd" / "text_encoder")
    weights = root / "sd" / "text_encoder" / "model.safetensors"
    state = {
        f"text_model.{k.removeprefix('text_model.')}": v for k, v in load_file(weights).items()
    }
    save_file(state, weights, metadata={"format": "pt"})
    # A whole CLIP (text and vision towers), as SD 1.x read openai/clip-vit-large-patch14.
    vision = dict(hidden_size=WIDTH, intermediate_size=37, num_hidden_layers=1)
    vision |= dict(num_attention_heads=2, image_size=32, patch_size=16)
    full = transformers.CLIPModel(
        transformers.CLIPConfig(
            text_config=config.to_dict(), vision_config=vision, projection_dim=WIDTH
        )
    )
    full.text_model.load_state_dict(model.state_dict())
    full.save_pretrained(root / "full")
    copy_tokenizer(tiny_clip, root / "full")
    # A CLIP config whose weights file lacks a tensor.
    (root / "partial").mkdir()
    (root / "partial" / "config.json").write_text((root / "flat" / "config.json").read_text())
    state = load_file(root / "flat" / "model.safetensors")
    del state["final_layer_norm.weight"]
    save_file(state, root / "partial" / "model.safetensors", metadata={"format": "pt"})
    copy_tokenizer(tiny_clip, root / "partial")
    (root / "bert").mkdir()
    (root / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    names = ("flat", "sd", "full", "partial", "bert")
    return {"root": root} | {name: root / name for name in names}


@pytest.fixture(scope="module")
def encoder(clip_dirs: dict[str, Path]) -> ClipTextEncoder:
    return ClipTextEncoder(ClipTextConfig(str(clip_dirs["flat"])))


def test_shapes_determinism_and_the_null_prompt(encoder: ClipTextEncoder) -> None:
    assert encoder.width == WIDTH
    context = encoder(["a cat", "a dog", ""])
    assert context.shape == (3, 77, WIDTH) and context.dtype == torch.float32
    assert torch.isfinite(context).all() and not context.requires_grad
    assert torch.equal(encoder(["a cat"])[0], encoder(["a cat"])[0])
    assert not torch.allclose(context[0], context[1])
    assert not torch.allclose(context[0], context[2])
    # The null prompt of classifier-free guidance: the same alone as in a batch.
    torch.testing.assert_close(encoder([""])[0], context[2], rtol=1e-5, atol=1e-6)


def test_max_length_pads_and_cuts(clip_dirs: dict[str, Path]) -> None:
    short = ClipTextEncoder(ClipTextConfig(str(clip_dirs["flat"]), max_length=8))
    context = short(("a cat", "the quick brown fox jumps over the lazy dog"))
    assert context.shape == (2, 8, WIDTH)


def test_diffusers_layout_loads_the_same_weights(
    clip_dirs: dict[str, Path], encoder: ClipTextEncoder
) -> None:
    sd = ClipTextEncoder(ClipTextConfig(str(clip_dirs["sd"])))
    prompts = ["a cat", ""]
    torch.testing.assert_close(sd(prompts), encoder(prompts))


def test_a_whole_clip_gives_its_text_tower(
    clip_dirs: dict[str, Path], encoder: ClipTextEncoder
) -> None:
    whole = ClipTextEncoder(ClipTextConfig(str(clip_dirs["full"])))
    prompts = ["a cat", ""]
    torch.testing.assert_close(whole(prompts), encoder(prompts))


def test_penultimate_is_the_final_norm_of_the_layer_before_last(
    clip_dirs: dict[str, Path], encoder: ClipTextEncoder
) -> None:
    prompts = ["a cat", "xyz", ""]
    penultimate = ClipTextEncoder(ClipTextConfig(str(clip_dirs["flat"]), layer="penultimate"))
    model = transformers.CLIPTextModel.from_pretrained(
        clip_dirs["flat"], local_files_only=True
    ).eval()
    tokenizer = transformers.CLIPTokenizer.from_pretrained(clip_dirs["flat"], local_files_only=True)
    ids = tokenizer(prompts, padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
        expected = model.final_layer_norm(out.hidden_states[-2])
    assert len(out.hidden_states) == 3  # embeddings + 2 layers
    torch.testing.assert_close(penultimate(prompts), expected)
    torch.testing.assert_close(encoder(prompts), out.last_hidden_state)
    assert not torch.allclose(penultimate(prompts), encoder(prompts))


def test_frozen_and_kept_out_of_state_dicts(clip_dirs: dict[str, Path]) -> None:
    clip = ClipTextEncoder(ClipTextConfig(str(clip_dirs["flat"])))
    tower = list(clip.model.parameters())
    assert tower and not any(p.requires_grad for p in tower)
    assert clip.train().training is False and clip.model.training is False
    parent = nn.ModuleDict({"clip": clip, "head": nn.Linear(2, 2)})
    parent.train()
    assert not clip.training and not clip.model.training
    # Not a registered submodule: checkpoints, optimisers and EMA never see the CLIP weights...
    assert list(clip.parameters()) == [] and clip.state_dict() == {}
    assert set(parent.state_dict()) == {"head.weight", "head.bias"}
    parent.requires_grad_(True)
    assert not any(p.requires_grad for p in tower)
    # ...but moving the parent moves the tower.
    parent.to(torch.float64)
    assert clip.model.final_layer_norm.weight.dtype == torch.float64
    assert clip(["a cat"]).dtype == torch.float64


def test_config_values_are_checked() -> None:
    with pytest.raises(ValueError, match=r"clip\.path must name a directory"):
        ClipTextConfig("  ")
    with pytest.raises(ValueError, match=r"clip\.max_length must be >= 2"):
        ClipTextConfig("x", max_length=1)
    with pytest.raises(ValueError, match=r"clip\.layer must be one of last, penultimate"):
        ClipTextConfig("x", layer="first")  # type: ignore[arg-type]


def test_clear_errors_for_bad_directories_and_inputs(
    clip_dirs: dict[str, Path], encoder: ClipTextEncoder
) -> None:
    missing = clip_dirs["root"] / "nowhere"
    with pytest.raises(FileNotFoundError, match=r"no CLIP text encoder at .*nowhere"):
        ClipTextEncoder(ClipTextConfig(str(missing)))
    empty = clip_dirs["root"] / "empty"
    empty.mkdir(exist_ok=True)
    with pytest.raises(ValueError, match=r"holds no CLIP text encoder .*text_encoder/"):
        ClipTextEncoder(ClipTextConfig(str(empty)))
    with pytest.raises(ValueError, match=r"holds a 'bert' model, not a CLIP text encoder"):
        ClipTextEncoder(ClipTextConfig(str(clip_dirs["bert"])))
    with pytest.raises(ValueError, match=r"lacks 1 CLIP text weights .*final_layer_norm"):
        ClipTextEncoder(ClipTextConfig(str(clip_dirs["partial"])))
    with pytest.raises(ValueError, match=r"max_length 78 exceeds the 77 positions"):
        ClipTextEncoder(ClipTextConfig(str(clip_dirs["flat"]), max_length=78))
    with pytest.raises(TypeError, match="not one string"):
        encoder("a cat")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one prompt"):
        encoder([])


def test_missing_transformers_says_what_to_install(
    clip_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    with pytest.raises(ImportError, match=r"pip install 'ldmkit\[clip\]'"):
        ClipTextEncoder(ClipTextConfig(str(clip_dirs["flat"])))
