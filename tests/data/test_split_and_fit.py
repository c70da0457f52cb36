"""The folder's held-out split (by name hash) and the ways an image becomes a square."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ldmkit.data.cached import skipped_files
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset, split_names
from ldmkit.data.fit import ImageFit, native_crop, parse_color, resize_and_pad
from ldmkit.data.image_folder import ImageFolderDataset, load_image
from ldmkit.data.split import heldout_mask, split_indices


def names(n: int) -> list[str]:
    return [f"img_{i:04d}.png" for i in range(n)]


def test_split_is_disjoint_complete_and_near_its_fraction() -> None:
    all_names = names(2000)
    train = split_indices(all_names, "train", 0.1, seed=0)
    held = split_indices(all_names, "heldout", 0.1, seed=0)
    assert sorted(train + held) == list(range(2000))
    assert 150 < len(held) < 250  # about 200
    other_seed = split_indices(all_names, "heldout", 0.1, seed=1)
    assert other_seed != held


def test_a_files_side_does_not_move_when_the_folder_grows() -> None:
    small = names(300)
    grown = sorted(small + [f"new_{i}.jpg" for i in range(500)])
    held_small = {small[i] for i in split_indices(small, "heldout", 0.05, 0)}
    held_grown = {grown[i] for i in split_indices(grown, "heldout", 0.05, 0)}
    assert held_small and held_small == held_grown & set(small)


def test_tiny_folders_keep_one_image_on_each_side() -> None:
    assert heldout_mask(names(1), 0.5, 0) == [False]
    for n in (2, 3, 5):
        mask = heldout_mask(names(n), 0.05, 0)
        assert any(mask) and not all(mask)
    assert heldout_mask(names(10), 0.0, 0) == [False] * 10
    with pytest.raises(ValueError, match=r"heldout_fraction=0.05"):
        split_indices(names(10), "heldout", 0.0, 0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        heldout_mask(names(3), 1.0, 0)


def _folder(root: Path, n: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (8, 8), (i * 10 % 256, 0, 0)).save(root / f"{i:03d}.png")
    return root


def test_build_dataset_train_and_heldout_never_share_a_file(tmp_path: Path) -> None:
    root = _folder(tmp_path / "imgs", 40)
    config = DataConfig(kind="folder", path=str(root), resolution=8, heldout_fraction=0.2)
    train = build_dataset(config, "train")
    held = build_dataset(config, "heldout")
    assert len(train) + len(held) == 40 and len(held) >= 1
    as_bytes = {bytes(train[i]["image"].numpy().tobytes()) for i in range(len(train))}
    assert not any(bytes(held[i]["image"].numpy().tobytes()) in as_bytes for i in range(len(held)))
    folder = ImageFolderDataset(root, 8, split="heldout", heldout_fraction=0.2)
    assert len(folder) == len(held) and folder.name(0).endswith(".png")


def test_pad_keeps_the_whole_image_on_the_background() -> None:
    sprite = Image.new("RGB", (39, 7), (255, 0, 0))
    square = np.asarray(resize_and_pad(sprite, 16, (0, 0, 255)))
    assert square.shape == (16, 16, 3)
    assert (square[8, :, 0] > 200).all()  # the middle row is the sprite, edge to edge
    assert (square[0, :, 2] == 255).all() and (square[-1, :, 2] == 255).all()  # blue bands


def test_native_crop_keeps_scale_and_scales_up_small_images() -> None:
    photo = Image.fromarray(
        np.arange(64 * 48 * 3, dtype=np.uint32).reshape(48, 64, 3).astype(np.uint8)
    )
    crop = native_crop(photo, 16, left=0.0, top=0.0)
    assert np.array_equal(np.asarray(crop), np.asarray(photo)[:16, :16])  # pixels untouched
    assert native_crop(Image.new("RGB", (10, 12)), 16).size == (16, 16)


def test_image_fit_modes_give_squares_and_random_is_seeded() -> None:
    image = Image.new("RGB", (50, 20), (0, 255, 0))
    for mode in ("crop", "pad", "native"):
        out = ImageFit(16, mode)(image, 0)  # type: ignore[arg-type]
        assert out.shape == (3, 16, 16) and out.dtype == torch.float32
    fit = ImageFit(16, "native", random=True, seed=3)
    wide = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 50, 3), dtype=np.uint8))
    assert torch.equal(fit(wide, 5), fit(wide, 5))
    assert not torch.equal(fit(wide, 5), fit(wide, 6))
    with pytest.raises(ValueError, match=r"data.fit must be one of crop, pad, native"):
        ImageFit(16, "stretch")  # type: ignore[arg-type]


def test_transparency_goes_over_the_chosen_background(tmp_path: Path) -> None:
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    assert np.asarray(load_image(tmp_path / "clear.png"))[0, 0].tolist() == [255, 255, 255]
    black = load_image(tmp_path / "clear.png", background=parse_color("black"))
    assert np.asarray(black)[0, 0].tolist() == [0, 0, 0]
    config = DataConfig(kind="folder", path=str(tmp_path), resolution=4, background="#808080")
    item = build_dataset(config, "train")[0]["image"]
    assert torch.allclose(item, torch.full_like(item, 128 / 127.5 - 1), atol=1e-6)


def test_bad_data_settings_name_the_setting() -> None:
    with pytest.raises(ValueError, match=r"data.background='blurple' is not a colour"):
        DataConfig(background="blurple")
    with pytest.raises(ValueError, match=r"data.heldout_fraction"):
        DataConfig(heldout_fraction=1.5)
    with pytest.raises(ValueError, match=r"data.fit"):
        DataConfig(fit="zoom")  # type: ignore[arg-type]


def test_crops_per_image_gives_distinct_native_crops_on_both_sides(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(
            tmp_path / f"{i}.png"
        )
    (tmp_path / "bad.png").write_bytes(b"not a png")
    config = DataConfig(
        kind="folder", path=str(tmp_path), resolution=16, fit="native", crops_per_image=5,
        heldout_fraction=0.3,
    )  # fmt: skip
    for split in ("train", "heldout"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = build_dataset(config, split)  # type: ignore[arg-type]
        files = split_names(config, split)  # type: ignore[arg-type]
        good = [name for name in files if name != "bad.png"]
        assert len(data) == 5 * len(good)
        crops = {data[i]["image"].numpy().tobytes() for i in range(len(data))}
        assert len(crops) == len(data)  # five different places in each photo
        bad = 1 if "bad.png" in files else 0
        assert len(skipped_files(data)) == bad and len(caught) == bad  # once, not five times
