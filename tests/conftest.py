"""Shared fixtures: a tiny random CLIP text encoder written to disk (the frozen-CLIP option is
tested without any downloaded weights) and tiny class-conditional latent diffusion models."""

import json
import os
import string
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tiny_models import tiny_ldm

from ldmkit.pipeline import LatentDiffusion

CLIP_WIDTH = 32
CLIP_TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json")


def _write_clip_tokenizer(directory: Path) -> int:
    """CLIP's files in the Stable Diffusion form: vocab.json, merges.txt, tokenizer_config.json;
    letters, letters ending a word (`</w>`), and two merges. Returns the vocabulary size."""
    directory.mkdir(parents=True, exist_ok=True)
    tokens = ["<|startoftext|>", "<|endoftext|>", *string.ascii_lowercase]
    tokens += [f"{c}</w>" for c in string.ascii_lowercase] + ["ca", "cat</w>"]
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (directory / "merges.txt").write_text("#version: 0.2\nc a\nca t</w>\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>"}
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, **special}
    config |= {"pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    return len(tokens)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random CLIPTextModel (width 32, 2 layers, 77 positions) and its tokenizer, saved
    together in one directory (the `CLIP_TOKENIZER_FILES` beside the model's files)."""
    transformers = pytest.importorskip(
        "transformers", reason="the CLIP encoder needs the clip extra: pip install 'ldmkit[clip]'"
    )
    directory = tmp_path_factory.mktemp("clip") / "flat"
    vocab_size = _write_clip_tokenizer(directory)
    config = transformers.CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=CLIP_WIDTH,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        projection_dim=CLIP_WIDTH,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    transformers.CLIPTextModel(config).save_pretrained(directory)
    return directory


@pytest.fixture
def make_ldm() -> Callable[..., LatentDiffusion]:
    """`tiny_ldm`, the factory: call it with num_classes / label_dropout."""
    return tiny_ldm


@pytest.fixture(scope="session", autouse=True)
def _latent_store(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Training tests store latents in a folder of their own, not in ~/.cache (subprocesses
    inherit it)."""
    os.environ["LDMKIT_LATENT_STORE"] = str(tmp_path_factory.mktemp("latent_store"))


@pytest.fixture(scope="session")
def stream_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shards of 30 small random pictures in two classes (ant, bee), 3 per shard, one in ten
    held out: for the streaming tests."""
    import numpy as np
    from PIL import Image

    from ldmkit.data.shards import write_shards

    root = tmp_path_factory.mktemp("stream")
    rng = np.random.default_rng(0)
    for name in ("ant", "bee"):
        (root / "images" / name).mkdir(parents=True)
        for i in range(15):
            pixels = rng.integers(0, 255, (12 + i, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "images" / name / f"{i}.png")
    write_shards(root / "images", root / "shards", heldout_fraction=0.1, per_shard=3)
    return root / "shards"
