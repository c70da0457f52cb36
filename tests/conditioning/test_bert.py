"""The BERT-style text transformer of the paper's text-to-image LDM against diffusers' own
`LDMBertModel` on the same random weights, and its word-piece prompts."""

from pathlib import Path

import pytest
import torch

from ldmkit.conditioning import BertConditioner, BertEncoder, BertEncoderConfig

transformers = pytest.importorskip("transformers", reason="BERT's tokenizer is transformers'")

WORDS = ["a", "cat", "dog", "photo", "of", "red", "blue", "##s", "the"]
CONFIG = BertEncoderConfig(
    vocab_size=5 + len(WORDS), width=32, layers=2, heads=2, head_dim=8, mlp_width=48, max_length=12
)


def write_vocab(folder: Path) -> Path:
    """A tiny uncased word-piece vocabulary: BERT's special tokens, then some words."""
    path = folder / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    return path


@torch.no_grad()
def test_the_encoder_equals_diffusers_ldmbert() -> None:
    diffusers_ldm = pytest.importorskip(
        "diffusers.pipelines.latent_diffusion.pipeline_latent_diffusion"
    )
    torch.manual_seed(0)
    ours = BertEncoder(CONFIG).eval()
    for p in ours.parameters():
        p.normal_(0, 0.2)
    theirs = diffusers_ldm.LDMBertModel(
        diffusers_ldm.LDMBertConfig(
            vocab_size=CONFIG.vocab_size,
            max_position_embeddings=CONFIG.max_length,
            d_model=CONFIG.width,
            encoder_layers=CONFIG.layers,
            encoder_attention_heads=CONFIG.heads,
            head_dim=CONFIG.head_dim,
            encoder_ffn_dim=CONFIG.mlp_width,
        )
    ).eval()
    state = {f"model.{k}": v for k, v in ours.state_dict().items()}
    missing, unexpected = theirs.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("to_logits") for k in missing)
    ids = torch.randint(0, CONFIG.vocab_size, (2, CONFIG.max_length))
    torch.testing.assert_close(ours(ids), theirs(ids)[0], rtol=1e-5, atol=1e-5)


def test_prompts_become_padded_word_pieces_and_problems_are_said(tmp_path: Path) -> None:
    conditioner = BertConditioner(CONFIG, write_vocab(tmp_path))
    ids = conditioner._ids(["a photo of a cat", ""])["input_ids"]
    assert ids.shape == (2, 12) and ids[0, :7].tolist() == [2, 5, 8, 9, 5, 6, 3]
    assert ids[1, :2].tolist() == [2, 3] and not ids[1, 2:].any()  # [CLS] [SEP] then [PAD]
    assert conditioner.context(["a cat"]).shape == (1, 12, 32)
    assert "lacks" in conditioner.problems(["a zebra"])[0]
    assert "cut to 10" in conditioner.problems(["the cat " * 8])[0]
    with pytest.raises(FileNotFoundError, match=r"bert-base-uncased's vocab\.txt"):
        BertConditioner(CONFIG, tmp_path / "nowhere.txt")
