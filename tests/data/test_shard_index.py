"""WebDataset shards another tool wrote, indexed where they lie (`ldmkit data index`): samples
found by key, captions and labels read, bad samples counted, trained on by index or streamed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ldmkit.cli import app
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset, data_class_names
from ldmkit.data.fit import ImageFit
from ldmkit.data.image_folder import load_image
from ldmkit.training.autoencoder_trainer import train_autoencoder
from ldmkit.training.data_stream import train_loader
from ldmkit.training.presets import PRESETS

webdataset = pytest.importorskip("webdataset")
runner = CliRunner()


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (20, 24, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _write(folder: Path, labels: bool) -> dict[str, bytes]:
    """Four tars of 6 samples as img2dataset writes them (`KEY.png`, `KEY.txt`, `KEY.json`),
    or with `KEY.cls`; plus one sample without an image and one whose image is broken."""
    folder.mkdir(parents=True)
    images: dict[str, bytes] = {}
    for t in range(4):
        with webdataset.TarWriter(str(folder / f"{t:05d}.tar")) as sink:
            for k in range(6):
                key = f"{t:05d}{k:04d}"
                sample: dict[str, object] = {"__key__": key, "png": _png(10 * t + k)}
                if labels:
                    sample["cls"] = (t + k) % 3
                else:
                    sample["txt"] = f"picture {key}"
                    sample["json"] = {"caption": "not this one", "width": 24}
                sink.write(sample)
                images[f"{t:05d}.tar/{key}"] = sample["png"]  # type: ignore[assignment]
            if t == 3:
                sink.write({"__key__": "nopicture", "txt": "a caption alone"})
                sink.write({"__key__": "broken", "png": b"\x89PNG not really", "txt": "x"})
    return images


@pytest.mark.parametrize("labels", [False, True])
def test_foreign_shards_are_indexed_where_they_lie(tmp_path: Path, labels: bool) -> None:
    images = _write(tmp_path / "wds", labels)
    out = tmp_path / "index"
    result = runner.invoke(
        app, ["data", "index", str(tmp_path / "wds" / "{00000..00003}.tar"), str(out)]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["shards"] == 4 and summary["skipped"] == 2
    assert summary["train"] + summary["heldout"] == 24 and summary["heldout"] > 0
    index = json.loads((out / "index.json").read_text())
    skipped = [line for lines in index["skipped"].values() for line in lines]
    assert any("nopicture: no image member" in line for line in skipped)
    assert any("broken" in line for line in skipped)
    config = DataConfig(kind="shards", path=str(out), resolution=16, cache=False)
    train = build_dataset(config, "train")
    fit = ImageFit(16, "crop")
    for i in (0, len(train) - 1):  # type: ignore[arg-type]
        item = train[i]
        name = index["splits"]["train"][i]["file_name"]
        assert torch.equal(item["image"], fit(load_image(io.BytesIO(images[name])), i))
        key = name.split("/")[-1]
        if labels:
            assert item["label"] == (int(key[:5]) + int(key[5:])) % 3
        else:
            assert item["caption"] == f"picture {key}"  # the .txt, not the .json's
    assert data_class_names(config) == (("class 0", "class 1", "class 2") if labels else ())
    streamed = DataConfig(kind="shards", path=str(out), resolution=16, stream=True)
    batch = next(iter(train_loader(train, streamed, 4, 0, 0, 1)))
    assert batch["image"].shape == (4, 3, 16, 16)


def test_a_streamed_run_on_foreign_shards(tmp_path: Path) -> None:
    _write(tmp_path / "wds", labels=False)
    result = runner.invoke(app, ["data", "index", str(tmp_path / "wds"), str(tmp_path / "wds")])
    assert result.exit_code == 0, result.output
    import dataclasses

    preset = PRESETS["tiny"]
    data = DataConfig(kind="shards", path=str(tmp_path / "wds"), resolution=16, stream=True)
    run = dataclasses.replace(
        preset.run, steps=2, batch_size=4, heldout_images=1, latent_stat_batches=1
    )
    config = dataclasses.replace(preset, data=data, run=run)
    assert train_autoencoder(config, tmp_path / "run", show_progress=False).step == 2


def test_bad_shard_sources_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "index", str(tmp_path / "none-{0..3}.tar"), str(tmp_path)])
    assert result.exit_code == 2 and "names no tar files" in result.output
    (tmp_path / "wds").mkdir()
    with webdataset.TarWriter(str(tmp_path / "wds" / "a.tar")) as sink:
        sink.write({"__key__": "k", "png": _png(0), "cls": "seven"})
    result = runner.invoke(app, ["data", "index", str(tmp_path / "wds"), str(tmp_path / "i")])
    assert result.exit_code == 2
    assert "a.tar member k.cls: a class label must be a whole number" in result.output


def test_a_pattern_of_shards_is_indexed_once_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LDMKIT_CACHE", str(tmp_path / "cache"))
    _write(tmp_path / "wds", labels=False)
    spec = f"shards:{tmp_path / 'wds'}/{{00000..00003}}.tar"
    settings = ["--preset", "tiny", "--set", "data.resolution=16", "--set", "run.steps=2"]
    settings += ["--set", "run.batch_size=4", "--set", "run.heldout_images=1"]
    settings += ["--set", "run.latent_stat_batches=1"]
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = runner.invoke(
            app, ["train-autoencoder", "--data", spec, "--out", str(out), *settings]
        )
        assert result.exit_code == 0, result.output
        runs.append(json.loads((out / "data.json").read_text()))
    indexes = list((tmp_path / "cache" / "shard-index").glob("*/index.json"))
    assert len(indexes) == 1  # the second run read the first one's index
    index = json.loads(indexes[0].read_text())
    assert runs[0]["train_images"] == runs[1]["train_images"] == len(index["splits"]["train"])
    assert len(runs[0]["skipped"]) == 2  # no picture, a broken one
    missing = runner.invoke(
        app,
        [
            "train-autoencoder",
            "--data",
            f"shards:{tmp_path}/none-{{0..3}}.tar",
            "--out",
            str(tmp_path / "c"),
            *settings,
        ],
    )
    assert missing.exit_code == 2 and "names no tar files" in missing.output
