"""Emoji rendering from Noto Color Emoji (a handful only, to stay fast)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ldmkit.data.emoji import (
    DEFAULT_FONT,
    emoji_caption,
    load_emoji_font,
    prepare_emoji,
    render_emoji,
)
from ldmkit.data.image_folder import ImageFolderDataset

needs_font = pytest.mark.skipif(
    not DEFAULT_FONT.is_file(),
    reason="Noto Color Emoji is not installed; apt-get install fonts-noto-color-emoji",
)


def test_captions_are_lower_case_names_without_components() -> None:
    assert emoji_caption(0x1F600) == "grinning face"
    assert emoji_caption(0x1F1E6) is None  # regional indicator: only a half of a flag
    assert emoji_caption(0x1F3FB) is None  # skin-tone modifier
    assert emoji_caption(0x10FFFF) is None  # unnamed


def test_missing_font_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install fonts-noto-color-emoji"):
        prepare_emoji(tmp_path / "out", font=tmp_path / "absent.ttf")
    assert not (tmp_path / "out").exists()


@needs_font
def test_render_one_emoji() -> None:
    font = load_emoji_font()
    image = render_emoji("\N{GRINNING FACE}", font, 32)
    assert image is not None and image.mode == "RGB" and image.size == (32, 32)
    pixels = np.asarray(image).astype(int)
    assert pixels[0, 0].tolist() == [255, 255, 255]  # white background in the corner
    red, green, blue = pixels[16, 8]  # the yellow face left of centre
    assert red > 200 and green > 150 and blue < 120
    assert render_emoji("A", font, 32) is None  # the font has no colour glyph for it


@needs_font
def test_prepare_a_few_emoji_reads_as_image_folder(tmp_path: Path) -> None:
    out = prepare_emoji(tmp_path / "emoji", resolution=16, limit=4)
    lines = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [line["text"] for line in lines] == [
        "copyright sign",
        "registered sign",
        "double exclamation mark",
        "exclamation question mark",
    ]
    assert sorted(p.name for p in out.glob("*.png")) == sorted(line["file_name"] for line in lines)
    dataset = ImageFolderDataset(out, 16)
    item = dataset[0]
    assert item["caption"] == "copyright sign" and item["label"] == -1
    assert isinstance(item["image"], torch.Tensor) and item["image"].shape == (3, 16, 16)
    assert [p.name for p in tmp_path.iterdir()] == ["emoji"]  # no staging folder left


@needs_font
def test_prepare_replaces_an_earlier_set_but_not_other_folders(tmp_path: Path) -> None:
    out = prepare_emoji(tmp_path / "emoji", resolution=8, limit=3)
    prepare_emoji(out, resolution=8, limit=2)
    assert len(list(out.glob("*.png"))) == 2
    assert len(list(tmp_path.iterdir())) == 1
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not an emoji"):
        prepare_emoji(tmp_path / "mine", limit=1)
    assert (tmp_path / "mine" / "keep.txt").read_text() == "precious"
