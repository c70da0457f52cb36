"""The CLIP text tokenizer from the byte-pair merges ldmkit ships (`assets/clip_bpe`), as a
transformers `CLIPTokenizer`: the tokenizer of Stable Diffusion 1.x single-file checkpoints,
which carry no tokenizer files, with nothing to download.

The vocabulary follows CLIP's construction (Radford et al. 2021, its `simple_tokenizer`): the
256 byte symbols, the same with the end-of-word mark `</w>`, one token per merge in merge order
(48,894 of them), then `<|startoftext|>` (49406) and `<|endoftext|>` (49407)."""

import gzip
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ldmkit.assets import CLIP_BPE

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
VOCAB_SIZE = 49408
_MERGES = VOCAB_SIZE - 2 * 256 - 2  # the merges the vocabulary uses (the file lists more)


def byte_symbols() -> list[str]:
    """The printable symbol byte-level BPE writes for each byte 0..255 (GPT-2's map, which CLIP
    keeps): visible Latin-1 bytes stand for themselves, the others for code points from 256
    up, so no byte becomes whitespace or a control character. Listed visible bytes first."""
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    visible += range(ord("®"), ord("ÿ") + 1)
    others = [b for b in range(256) if b not in visible]
    return [chr(b) for b in visible] + [chr(256 + i) for i in range(len(others))]


def clip_vocabulary(path: Path = CLIP_BPE) -> tuple[dict[str, int], list[str]]:
    """({token: id}, merge lines "a b") of CLIP's tokenizer, from its merges file."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    merges = lines[1 : 1 + _MERGES]  # the first line is a version header
    symbols = byte_symbols()
    tokens = [*symbols, *(s + "</w>" for s in symbols), *(m.replace(" ", "") for m in merges)]
    tokens += [BOS, EOS]
    if len(tokens) != VOCAB_SIZE:
        raise ValueError(f"{path} gives {len(tokens)} CLIP tokens, not {VOCAB_SIZE}")
    return {token: i for i, token in enumerate(tokens)}, merges


def clip_tokenizer(max_length: int = 77, pad_token: str = EOS) -> "CLIPTokenizer":
    """A CLIPTokenizer with CLIP's vocabulary, padding with `pad_token`: the end of text for
    Stable Diffusion 1.x (OpenAI CLIP), "!" (id 0) for 2.x (OpenCLIP pads with zeros)."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocabulary()
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        (directory / "vocab.json").write_text(json.dumps(vocab))
        (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
        config = {"bos_token": BOS, "eos_token": EOS, "pad_token": pad_token, "unk_token": EOS}
        config["model_max_length"] = max_length
        (directory / "tokenizer_config.json").write_text(json.dumps(config))
        return CLIPTokenizer.from_pretrained(directory, local_files_only=True)
