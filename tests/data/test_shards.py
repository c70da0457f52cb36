"""WebDataset shards of a folder: written once (bad files counted), read by index, the same
batches as the folder for the same seed, readable by WebDataset itself."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from ldmkit.cli import app
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset, split_names
from ldmkit.data.shards import read_index
from ldmkit.training.data_stream import batch_loader

runner = CliRunner()


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("ant", "bee"):
        (root / name).mkdir(parents=True)
        for i in range(9):
            pixels = rng.integers(0, 255, (20 + i, 30, 3), dtype=np.uint8)
            suffix = ".png" if i % 2 else ".jpg"
            Image.fromarray(pixels).save(root / name / f"{i}{suffix}")
    (root / "bee" / "bad.png").write_bytes(b"\x89PNG no")
    return root


@pytest.fixture
def folder_and_shards(tmp_path: Path) -> tuple[Path, Path]:
    folder = _folder(tmp_path / "bugs")
    out = tmp_path / "shards"
    result = runner.invoke(
        app,
        ["data", "shards", str(folder), str(out), "--per-shard", "4", "--heldout-fraction", "0.2"],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["skipped"] == 1 and summary["train"] + summary["heldout"] == 18
    assert summary["shards"] == len(list(out.glob("*.tar")))
    return folder, out


def test_shards_hold_the_folders_split_and_classes(folder_and_shards: tuple[Path, Path]) -> None:
    folder, out = folder_and_shards
    index = read_index(out)
    assert index["class_names"] == ["ant", "bee"]
    as_folder = DataConfig(kind="folder", path=str(folder), heldout_fraction=0.2)
    as_shards = DataConfig(kind="shards", path=str(out))
    for split in ("train", "heldout"):
        names = [n for n in split_names(as_folder, split) if n != "bee/bad.png"]  # type: ignore[arg-type]
        assert split_names(as_shards, split) == names  # type: ignore[arg-type]
    assert not list(out.glob("*.tmp"))


def test_the_same_batches_as_the_folder_for_the_same_seed(
    folder_and_shards: tuple[Path, Path],
) -> None:
    folder, out = folder_and_shards
    common = dict(resolution=16, heldout_fraction=0.2, random_crop=True, flip=True, cache=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the bad file, wherever the split put it
        a = build_dataset(DataConfig(kind="folder", path=str(folder), **common), "train")  # type: ignore[arg-type]
    b = build_dataset(DataConfig(kind="shards", path=str(out), **common), "train")  # type: ignore[arg-type]
    assert len(a) == len(b)  # type: ignore[arg-type]
    for x, y in zip(batch_loader(a, 4, 7, 3, 9), batch_loader(b, 4, 7, 3, 9), strict=True):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"])


def test_webdataset_reads_the_shards(folder_and_shards: tuple[Path, Path]) -> None:
    webdataset = pytest.importorskip("webdataset")
    _, out = folder_and_shards
    urls = [str(path) for path in sorted(out.glob("train-*.tar"))]
    samples = list(webdataset.WebDataset(urls, shardshuffle=False).decode("pil"))
    assert len(samples) == len(read_index(out)["splits"]["train"])
    first = samples[0]
    image = first.get("png", first.get("jpg"))
    meta = first["json"]
    assert image.size == (meta["width"], meta["height"]) and first["cls"] in (0, 1)


def test_training_on_shards_equals_training_on_the_folder(
    folder_and_shards: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, out = folder_and_shards
    settings = ["--preset", "tiny", "--set", "data.resolution=16", "--set", "run.steps=3"]
    settings += ["--set", "run.checkpoint_every=3", "--set", "run.image_every=3"]
    settings += ["--set", "run.heldout_images=2", "--set", "run.latent_stat_batches=1"]
    settings += ["--set", "data.heldout_fraction=0.2", "--set", "run.batch_size=4"]
    weights, records = [], []
    for name, spec in (("folder", str(folder)), ("shards", f"shards:{out}")):
        run = tmp_path / name
        result = runner.invoke(
            app, ["train-autoencoder", "--data", spec, "--out", str(run), *settings]
        )
        assert result.exit_code == 0, result.output
        weights.append(load_file(str(run / "model" / "model.safetensors")))
        records.append(json.loads((run / "data.json").read_text()))
    # The bad file counts alike, found now (folder) or when sharded (shards).
    assert len(records[0]["skipped"]) == len(records[1]["skipped"])
    assert records[0]["train_images"] == records[1]["train_images"]
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


def test_bad_shard_paths_are_clear(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["train-autoencoder", "--out", str(tmp_path / "r"), "--data", "shards:"]
    )
    assert result.exit_code == 2
    with pytest.raises(FileNotFoundError, match="ldmkit data shards DIR OUT"):
        read_index(tmp_path)
