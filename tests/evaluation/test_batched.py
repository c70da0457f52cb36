"""What held-out evaluations share (`evaluation.batched`): the first n items as a batch, the timed
loop over batches, sampling whose images do not depend on the batch size, the record of the
sampling options, and the PNG of aligned rows."""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from ldmkit.evaluation.batched import (
    EVALUATION_OPTIONS,
    SPATIAL_OPTIONS,
    first_items,
    options_record,
    sample_batches,
    save_rows,
    timed_batches,
)
from ldmkit.pipeline import LatentDiffusion
from ldmkit.samplers import SamplingOptions

MakeLDM = Callable[..., LatentDiffusion]


def numbered_items(count: int) -> list[dict[str, Any]]:
    """Items i with an image full of i, the label i and the name "item i"."""
    return [
        {"image": torch.full((3, 4, 4), float(i)), "label": i, "name": f"item {i}"}
        for i in range(count)
    ]


def grid_size(rows: int, columns: int, side: int, padding: int = 2) -> tuple[int, int]:
    """(width, height) of an `image_grid` of square images, `padding` around each."""
    return columns * (side + padding) + padding, rows * (side + padding) + padding


def test_evaluation_options_guide_unless_the_condition_is_spatial() -> None:
    assert EVALUATION_OPTIONS.guidance is not None and EVALUATION_OPTIONS.guidance > 1
    assert SPATIAL_OPTIONS.guidance == 1.0


def test_first_items_stack_the_first_n() -> None:
    batch = first_items(numbered_items(5), 3)
    assert batch["image"].shape == (3, 3, 4, 4)
    assert batch["image"][:, 0, 0, 0].tolist() == [0.0, 1.0, 2.0]
    assert batch["label"].tolist() == [0, 1, 2] and batch["label"].dtype == torch.long
    assert batch["name"] == ["item 0", "item 1", "item 2"]


def test_first_items_take_all_of_smaller_data() -> None:
    batch = first_items(numbered_items(4), 10)
    assert batch["label"].tolist() == [0, 1, 2, 3] and len(batch["image"]) == 4


@pytest.mark.parametrize(("count", "n"), [(5, 0), (5, -2), (0, 3)])
def test_first_items_refuse_fewer_than_one_image(count: int, n: int) -> None:
    with pytest.raises(ValueError, match=r"at least one image; pass --n >= 1"):
        first_items(numbered_items(count), n)


def test_timed_batches_concatenate_in_order_and_pass_each_start() -> None:
    calls: list[tuple[slice, int]] = []

    def generate(part: slice, start: int) -> torch.Tensor:
        calls.append((part, start))
        time.sleep(0.01)
        return torch.arange(part.start, part.stop).unsqueeze(1) * torch.ones(1, 2)

    out, seconds = timed_batches(7, 3, "test", generate)
    assert calls == [(slice(0, 3), 0), (slice(3, 6), 3), (slice(6, 7), 6)]
    torch.testing.assert_close(out, torch.arange(7.0).unsqueeze(1).expand(7, 2))
    assert seconds >= 0.03  # the three calls' time is counted


def test_sample_batches_do_not_depend_on_the_batch_size(make_ldm: MakeLDM) -> None:
    model = make_ldm(num_classes=5)
    options = SamplingOptions(steps=2, guidance=2.0, seed=3)
    labels = torch.tensor([4, 0, 2, 1, 3])
    whole, seconds = sample_batches(model, 5, options, 5, "whole", labels=labels, prompts=None)
    split, _ = sample_batches(model, 5, options, 2, "split", labels=labels)
    assert whole.shape[0] == 5 and whole.device.type == "cpu" and seconds > 0
    torch.testing.assert_close(split, whole, atol=1e-5, rtol=1e-5)
    # Image i draws its noise from options.seed + i with label i.
    third = model.sample(1, labels[2:3], options=options.replace(seed=options.seed + 2))
    torch.testing.assert_close(third.cpu(), whole[2:3], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(whole[0], whole[1])  # different seeds and labels differ


def test_options_record_holds_the_options_fields() -> None:
    options = SamplingOptions(sampler="ddpm", steps=7, guidance=2.5, precision="bf16")
    record = options_record(options)
    fields = {"guidance", "sampler", "steps", "compile", "sampling_precision"}
    assert fields <= record.keys()
    for key, value in record.items():
        field = "precision" if key == "sampling_precision" else key
        assert value == getattr(options, field), key
    assert record["sampler"] == "ddpm" and record["steps"] == 7 and record["guidance"] == 2.5
    assert record["sampling_precision"] == "bf16" and record["compile"] is False


def test_save_rows_writes_one_row_each_of_the_first_k(tmp_path: Path) -> None:
    side = 6
    dark, light = -torch.ones(5, 3, side, side), torch.ones(5, 3, side, side)
    path = tmp_path / "reports" / "rows.png"  # the folder is made
    save_rows(path, [dark, light], k=3)
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        assert picture.size == grid_size(rows=2, columns=3, side=side)
        centre = 2 + side // 2  # inside the first image of each row
        assert picture.getpixel((centre, centre)) == (0, 0, 0)
        assert picture.getpixel((centre, centre + side + 2)) == (255, 255, 255)
    wide = tmp_path / "wide.png"
    save_rows(wide, [dark, light, dark], k=8)  # k beyond the rows' length takes all 5
    with Image.open(wide) as picture:
        assert picture.size == grid_size(rows=3, columns=5, side=side)
