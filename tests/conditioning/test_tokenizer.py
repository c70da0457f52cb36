"""The caption tokenizer: trained on captions, fixed length, saved and read back identically."""

import json
from pathlib import Path

import pytest

from ldmkit.conditioning import TextTokenizer

CAPTIONS = [
    "a small red circle above a large blue square",
    "a large green star left of a small yellow ring",
    "a purple triangle",
    "an orange square below a red star",
]


def test_ids_are_cls_words_sep_then_padding() -> None:
    tokenizer = TextTokenizer.train(CAPTIONS, vocab_size=200, max_length=16)
    ids = tokenizer(["a red star", ""])
    assert ids.shape == (2, 16)
    assert ids[0, 0] == 2 and ids[0, 4] == 3 and (ids[0, 5:] == 0).all()
    assert ids[1, :2].tolist() == [2, 3] and (ids[1, 2:] == 0).all()  # the null prompt
    assert tokenizer.decode(ids[:1]) == ["a red star"]
    assert tokenizer(["A RED STAR"]).equal(ids[:1])  # lower-cased


def test_long_text_is_cut_and_unknown_words_do_not_fail() -> None:
    tokenizer = TextTokenizer.train(CAPTIONS, vocab_size=200, max_length=8)
    ids = tokenizer([" ".join(CAPTIONS), "zebra"])
    assert ids.shape == (2, 8) and ids[0, -1] == 3  # [SEP] kept at the end


def test_what_a_text_loses_is_named() -> None:
    tokenizer = TextTokenizer.train(CAPTIONS, vocab_size=200, max_length=8)
    long = " ".join(CAPTIONS)
    problems = tokenizer.problems(["a red star", "a red zebra qux", long])
    assert len(problems) == 2  # the first is read as written
    assert problems[0] == "prompt 'a red zebra qux': unknown words read as [UNK]: zebra, qux"
    assert "cut to 8 tokens after 'a small red circle above a' (character 26" in problems[1]
    assert f"of {len(long)})" in problems[1]


def test_save_and_load_give_the_same_ids(tmp_path: Path) -> None:
    tokenizer = TextTokenizer.train(CAPTIONS, vocab_size=200, max_length=16)
    tokenizer.save(tmp_path / "tokenizer.json")
    again = TextTokenizer.from_file(tmp_path / "tokenizer.json", 16)
    assert again(CAPTIONS).equal(tokenizer(CAPTIONS))
    assert again.vocab_size == tokenizer.vocab_size <= 200


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no tokenizer"):
        TextTokenizer.from_file(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text(json.dumps({"not": "a tokenizer"}))
    with pytest.raises(ValueError, match="not a tokenizers JSON"):
        TextTokenizer.from_file(tmp_path / "bad.json")
    with pytest.raises(TypeError, match="list of strings"):
        TextTokenizer.train(CAPTIONS, 100, 8)("one string")  # type: ignore[arg-type]


def test_ids_follow_the_sorted_vocabulary() -> None:
    tokenizer = TextTokenizer.train(CAPTIONS, vocab_size=200, max_length=16)
    vocab = tokenizer.tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.__getitem__)
    assert tokens[:4] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] and tokens[4:] == sorted(tokens[4:])
