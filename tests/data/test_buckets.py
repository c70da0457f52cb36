"""Aspect-ratio buckets: their sizes, one bucket per batch, and training on them end to end."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from ldmkit.cli import app
from ldmkit.data.buckets import bucket_sizes, nearest_bucket
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset
from ldmkit.training.data_stream import (
    StepBatchSampler,
    batches_per_pass,
    bucket_batches,
    size_groups,
)


def test_bucket_sizes_cover_wide_and_tall_at_about_the_square_area() -> None:
    sizes = bucket_sizes(64, 16)
    assert (64, 64) in sizes
    assert all(w % 16 == 0 and h % 16 == 0 and w * h <= 64 * 64 for w, h in sizes)
    assert {(h, w) for w, h in sizes} == set(sizes)  # tall for every wide
    assert all(1 / 4 <= w / h <= 4 for w, h in sizes)
    assert nearest_bucket(39, 7, sizes) == (128, 32)  # a 5.6:1 sprite gets the widest
    assert nearest_bucket(100, 101, sizes) == (64, 64)
    with pytest.raises(ValueError, match=r"data.bucket_step=24 must divide data.resolution=64"):
        bucket_sizes(64, 24)


def test_each_batch_holds_one_bucket_and_each_pass_every_item() -> None:
    groups = [0] * 10 + [1] * 3 + [2] * 7
    per_pass = batches_per_pass(groups, 4)
    assert per_pass == 3 + 1 + 2
    for epoch in range(3):
        batches = bucket_batches(groups, 4, seed=5, epoch=epoch)
        assert len(batches) == per_pass
        assert all(len({groups[i] for i in batch}) == 1 and len(batch) == 4 for batch in batches)
        assert {i for batch in batches for i in batch} == set(range(20))
    assert bucket_batches(groups, 4, 5, 0) == bucket_batches(groups, 4, 5, 0)
    assert bucket_batches(groups, 4, 5, 0) != bucket_batches(groups, 4, 5, 1)


def test_the_sampler_resumes_anywhere_and_splits_batches_across_ranks() -> None:
    groups = [0] * 9 + [1] * 5
    whole = list(StepBatchSampler(14, 4, 3, 0, 12, groups=groups))
    resumed = list(StepBatchSampler(14, 4, 3, 7, 12, groups=groups))
    assert resumed == whole[7:]  # a pure function of the step
    ranks = [
        list(StepBatchSampler(14, 4, 3, 0, 12, rank=r, world=2, groups=groups)) for r in (0, 1)
    ]
    assert [a + b for a, b in zip(*ranks, strict=True)] == whole
    assert size_groups([(8, 8), (8, 8)]) is None
    assert size_groups([(8, 16), (8, 8), (8, 16)]) == [1, 0, 1]


def _shapes_folder(root: Path) -> Path:
    root.mkdir()
    for i, size in enumerate([(60, 20), (62, 22), (20, 60), (40, 40), (41, 39), (90, 30)] * 2):
        Image.new("RGB", size, (40 * (i % 6), 90, 200)).save(root / f"{i:02d}.png")
    return root


def test_buckets_fit_images_near_their_shape(tmp_path: Path) -> None:
    data = _shapes_folder(tmp_path / "mixed")
    config = DataConfig(kind="folder", path=str(data), resolution=32, fit="bucket", bucket_step=8)
    train = build_dataset(config, "train")
    shapes = Counter(tuple(train[i]["image"].shape[-2:]) for i in range(len(train)))  # type: ignore[arg-type]
    assert len(shapes) >= 3  # wide, tall and square buckets
    assert all(h * w <= 32 * 32 for h, w in shapes)
    heldout = build_dataset(config, "heldout")
    assert all(heldout[i]["image"].shape[-2:] == (32, 32) for i in range(len(heldout)))  # type: ignore[arg-type]


def test_autoencoder_and_ldm_train_on_buckets(tmp_path: Path) -> None:
    data = _shapes_folder(tmp_path / "mixed")
    runner = CliRunner()
    common = ["--data", str(data), "--set", "data.fit=bucket", "--set", "data.bucket_step=8"]
    common += [
        "--set",
        "run.steps=3",
        "--set",
        "run.checkpoint_every=3",
        "--set",
        "run.batch_size=4",
    ]
    result = runner.invoke(
        app,
        [
            *("train-autoencoder", "--preset", "tiny", "--out", str(tmp_path / "ae"), *common),
            *("--set", "run.latent_stat_batches=2", "--set", "run.heldout_images=2"),
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "ae" / "data.json").read_text())
    assert len(record["bucket_sizes"]) >= 3 and sum(record["bucket_sizes"].values()) == 11
    result = runner.invoke(
        app,
        [
            *("train", "--preset", "tiny-uncond", "--out", str(tmp_path / "ldm"), *common),
            *("--autoencoder", str(tmp_path / "ae" / "model"), "--set", "run.sample_every=3"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ldm" / "samples.png").is_file()


def test_a_bucket_step_the_model_cannot_take_is_refused() -> None:
    from ldmkit.training.data_record import check_bucket_step

    config = DataConfig(kind="folder", path="x", resolution=64, fit="bucket", bucket_step=8)
    check_bucket_step(config, 8, "this autoencoder")  # fits
    with pytest.raises(ValueError, match=r"data.bucket_step=8: .* multiples of 16; set data"):
        check_bucket_step(config, 16, "this first stage and UNet")
    check_bucket_step(DataConfig(resolution=64), 16, "any")  # no buckets: nothing to check
