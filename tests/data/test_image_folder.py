"""Image loading edge cases and ImageFolderDataset: captions, labels, crops, bad files left out."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, features

from ldmkit.data.cached import CachedDataset, skipped_files
from ldmkit.data.image_folder import (
    IMAGE_EXTENSIONS,
    ImageFolderDataset,
    ImageLoadError,
    SkippedImageWarning,
    load_image,
)

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def solid(path: Path, color: tuple[int, int, int] = RED, size: tuple[int, int] = (8, 8)) -> Path:
    """Write a solid-colour RGB image and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def pixels(path: Path) -> np.ndarray:
    """load_image as a uint8 array (H, W, 3)."""
    image = load_image(path)
    assert image.mode == "RGB"
    return np.asarray(image)


# --- load_image -------------------------------------------------------------------------------


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    rgba = np.array([[[0, 0, 255, 255], [255, 0, 0, 0], [0, 0, 0, 128]]], dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = pixels(tmp_path / "a.png")
    assert out[0, 0].tolist() == [0, 0, 255]  # opaque blue stays blue
    assert out[0, 1].tolist() == [255, 255, 255]  # fully transparent becomes white
    assert np.all(np.abs(out[0, 2].astype(int) - 127) <= 1)  # half black over white is grey


def test_grayscale_and_gray_alpha(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 100, 255]], dtype=np.uint8), mode="L").save(tmp_path / "l.png")
    assert pixels(tmp_path / "l.png")[0].tolist() == [[0] * 3, [100] * 3, [255] * 3]
    la = np.array([[[50, 255], [50, 0]]], dtype=np.uint8)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    assert pixels(tmp_path / "la.png")[0].tolist() == [[50] * 3, [255] * 3]


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32896, 65535, 1000]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")  # mode I;16 -> 16-bit PNG
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    out = pixels(tmp_path / "g16.png")
    assert out[0, :, 0].tolist() == [0, 1, 128, 255, 4]  # round(v / 257)
    assert np.all(out[..., 0] == out[..., 2])


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    palette_image = Image.new("P", (2, 1))
    palette_image.putpalette([255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    palette_image.putpixel((0, 0), 0)
    palette_image.putpixel((1, 0), 1)
    palette_image.save(tmp_path / "p.png")
    assert pixels(tmp_path / "p.png")[0].tolist() == [list(RED), list(GREEN)]
    palette_image.save(tmp_path / "pt.png", transparency=0)
    assert pixels(tmp_path / "pt.png")[0].tolist() == [[255, 255, 255], list(GREEN)]


@pytest.mark.parametrize("suffix", [".jpg", ".webp"])
def test_lossy_formats(tmp_path: Path, suffix: str) -> None:
    if suffix == ".webp" and not features.check("webp"):
        pytest.skip("this Pillow build has no WebP support")
    path = solid(tmp_path / f"a{suffix}", BLUE, (16, 12))
    out = pixels(path)
    assert out.shape == (12, 16, 3)
    assert np.all(np.abs(out.astype(int) - np.array(BLUE)) < 8)


def test_corrupt_and_truncated_files_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "junk.png").write_bytes(b"this is not an image")
    with pytest.raises(ImageLoadError, match=r"junk\.png"):
        load_image(tmp_path / "junk.png")
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        buffer, format="PNG"
    )
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match=r"cut\.png"):
        load_image(tmp_path / "cut.png")


# --- ImageFolderDataset -----------------------------------------------------------------------


def test_output_format_shape_and_range(tmp_path: Path) -> None:
    solid(tmp_path / "white.png", (255, 255, 255), (40, 20))
    solid(tmp_path / "x_black.png", (0, 0, 0), (20, 40))
    dataset = ImageFolderDataset(tmp_path, resolution=16)
    assert len(dataset) == 2
    item = dataset[0]
    assert set(item) == {"image", "caption", "label", "index"}
    image = item["image"]
    assert isinstance(image, torch.Tensor)
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32
    assert torch.all(image == 1.0)
    assert torch.all(dataset[1]["image"] == -1.0)
    assert (item["caption"], item["label"], item["index"]) == ("", -1, 0)
    assert dataset.class_names == ()


def test_center_crop_keeps_the_middle(tmp_path: Path) -> None:
    stripes = np.zeros((10, 30, 3), dtype=np.uint8)
    stripes[:, :10], stripes[:, 10:20], stripes[:, 20:] = RED, GREEN, BLUE
    Image.fromarray(stripes).save(tmp_path / "stripes.png")
    image = ImageFolderDataset(tmp_path, resolution=10)[0]["image"]
    assert isinstance(image, torch.Tensor)
    expected = torch.tensor([-1.0, 1.0, -1.0]).view(3, 1, 1).expand(3, 10, 10)
    assert torch.equal(image, expected)


def test_random_crop_and_flip_are_deterministic(tmp_path: Path) -> None:
    gradient = np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (16, 1, 3))
    for k in range(6):
        Image.fromarray(gradient).save(tmp_path / f"{k}.png")
    first = ImageFolderDataset(tmp_path, 16, crop="random", flip=True, seed=3)
    again = ImageFolderDataset(tmp_path, 16, crop="random", flip=True, seed=3)
    other = ImageFolderDataset(tmp_path, 16, crop="random", flip=True, seed=4)
    images = [first[k]["image"] for k in range(6)]
    for k in range(6):
        assert torch.equal(images[k], again[k]["image"])  # same (seed, index): same item
        assert torch.equal(images[k], first[k]["image"])  # and the same in every epoch
    assert any(not torch.equal(images[k], other[k]["image"]) for k in range(6))
    # Identical source images: the crops/flips must differ between indices.
    assert len({tuple(img[0, 0].tolist()) for img in images}) > 1
    flipped = [bool(img[0, 0, 0] > img[0, 0, -1]) for img in images]
    assert any(flipped) and not all(flipped)


def test_no_flip_no_random_is_plain_center(tmp_path: Path) -> None:
    gradient = np.tile(np.arange(32, dtype=np.uint8)[None, :, None] * 8, (8, 1, 3))
    Image.fromarray(gradient).save(tmp_path / "g.png")
    a = ImageFolderDataset(tmp_path, 8, seed=0)[0]["image"]
    b = ImageFolderDataset(tmp_path, 8, seed=99)[0]["image"]
    assert isinstance(a, torch.Tensor) and torch.equal(a, b)
    assert a[0, 0, 0] < a[0, 0, -1]  # not flipped


def test_corrupt_file_raises_naming_it(tmp_path: Path) -> None:
    # The dataset itself never swaps in another image; `CachedDataset` leaves bad files out.
    solid(tmp_path / "a.png", RED)
    (tmp_path / "b.png").write_bytes(b"\x89PNG broken")
    dataset = ImageFolderDataset(tmp_path, 4)
    assert dataset[0]["index"] == 0
    with pytest.raises(ImageLoadError, match=r"b\.png"):
        dataset[1]


def test_bad_files_are_left_out_counted_and_never_duplicated(tmp_path: Path) -> None:
    solid(tmp_path / "a.png", RED)
    (tmp_path / "b.png").write_bytes(b"\x89PNG broken")
    solid(tmp_path / "c.png", BLUE)
    (tmp_path / "z.png").write_bytes(b"")
    for keep in (True, False):
        with pytest.warns(SkippedImageWarning) as caught:
            dataset = CachedDataset(ImageFolderDataset(tmp_path, 4), keep_images=keep)
        assert len(caught) == 2  # once per bad file
        assert len(dataset) == 2
        assert [dataset[k]["index"] for k in range(2)] == [0, 2]  # a.png and c.png, once each
        assert [line.split(":")[0].rsplit("/", 1)[-1] for line in skipped_files(dataset)] == [
            "b.png",
            "z.png",
        ]


def test_all_files_corrupt_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"nope")
    # A ValueError the commands turn into exit 2 with this message, not a traceback.
    with pytest.warns(SkippedImageWarning), pytest.raises(ValueError, match="none of the 1"):
        CachedDataset(ImageFolderDataset(tmp_path, 4))


def test_empty_folder_lists_extensions(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no images here")
    (tmp_path / ".hidden").mkdir()
    solid(tmp_path / ".hidden" / "a.png")  # hidden folders are not searched
    with pytest.raises(ValueError, match=r"no images found") as info:
        ImageFolderDataset(tmp_path, 8)
    assert all(ext in str(info.value) for ext in IMAGE_EXTENSIONS)


def test_missing_root_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolderDataset(tmp_path / "nope", 8)
    solid(tmp_path / "a.png")
    with pytest.raises(NotADirectoryError):
        ImageFolderDataset(tmp_path / "a.png", 8)
    with pytest.raises(ValueError, match="resolution"):
        ImageFolderDataset(tmp_path, 0)
    with pytest.raises(ValueError, match="crop"):
        ImageFolderDataset(tmp_path, 8, crop="left")  # type: ignore[arg-type]
    with pytest.raises(IndexError):
        ImageFolderDataset(tmp_path, 8)[1]


def test_metadata_jsonl_captions(tmp_path: Path) -> None:
    solid(tmp_path / "a.png")
    solid(tmp_path / "sub" / "b.png")
    lines = [
        {"file_name": "a.png", "text": "a red square"},
        {"file_name": "sub/b.png", "text": "another red square"},
    ]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    dataset = ImageFolderDataset(tmp_path, 4)
    assert [dataset[k]["caption"] for k in range(2)] == ["a red square", "another red square"]
    assert [dataset[k]["label"] for k in range(2)] == [-1, -1]


def test_metadata_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    solid(tmp_path / "a.png")
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png", "text": "ok"}\n{oops\n')
    with pytest.raises(ValueError, match="line 2"):
        ImageFolderDataset(tmp_path, 4)
    (tmp_path / "metadata.jsonl").write_text('{"file": "a.png", "caption": "x"}\n')
    with pytest.raises(ValueError, match="'file_name' and 'text'"):
        ImageFolderDataset(tmp_path, 4)


def test_sidecar_txt_captions_and_missing_ones_warn(tmp_path: Path) -> None:
    solid(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("  a red square\n", encoding="utf-8")
    solid(tmp_path / "b.png")
    with pytest.warns(UserWarning, match="1 of 2 images"):
        dataset = ImageFolderDataset(tmp_path, 4)
    assert [dataset[k]["caption"] for k in range(2)] == ["a red square", ""]


def test_class_labels_from_subfolders(tmp_path: Path) -> None:
    solid(tmp_path / "dog" / "1.png", BLUE)
    solid(tmp_path / "cat" / "1.png", RED)
    solid(tmp_path / "cat" / "nested" / "2.png", RED)
    dataset = ImageFolderDataset(tmp_path, 4)
    assert dataset.class_names == ("cat", "dog")
    items = [dataset[k] for k in range(len(dataset))]
    assert [item["label"] for item in items] == [0, 0, 1]
    assert all(item["caption"] == "" for item in items)


def test_no_labels_when_captioned_or_loose_files(tmp_path: Path) -> None:
    solid(tmp_path / "dog" / "1.png")
    solid(tmp_path / "loose.png")
    assert ImageFolderDataset(tmp_path, 4).class_names == ()
    (tmp_path / "loose.png").unlink()
    (tmp_path / "dog" / "1.txt").write_text("a dog")
    dataset = ImageFolderDataset(tmp_path, 4)
    assert dataset.class_names == () and dataset[0]["label"] == -1


def test_non_utf8_captions_name_the_file_and_line(tmp_path: Path) -> None:
    solid(tmp_path / "a.png", RED)
    solid(tmp_path / "b.png", RED)
    metadata = tmp_path / "metadata.jsonl"
    good = json.dumps({"file_name": "a.png", "text": "a cat"}).encode()
    metadata.write_bytes(good + b"\n" + b'{"file_name": "b.png", "text": "caf\xe9"}\n')
    with pytest.raises(
        ValueError, match=r"metadata.jsonl line 2 is not UTF-8 text .*save it as UTF-8"
    ):
        ImageFolderDataset(tmp_path, 4)
    metadata.unlink()
    (tmp_path / "a.txt").write_bytes(b"caf\xe9 au lait")
    with pytest.raises(ValueError, match=r"caption file .*a.txt is not UTF-8 text \(byte 4"):
        ImageFolderDataset(tmp_path, 4)
