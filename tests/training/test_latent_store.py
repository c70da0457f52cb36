"""Latents on disk between runs: stored by the first run, read by the next, encoded afresh when
the data or the first stage changes."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image

from ldmkit.checkpoint import load_autoencoder
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset
from ldmkit.training.latent_store import latent_key, store_root, stored_latents


def _folder(root: Path) -> Path:
    root.mkdir()
    for i, size in enumerate([(16, 16), (17, 15), (32, 8), (30, 9), (8, 32)]):
        Image.new("RGB", size, (50 * i, 20, 200)).save(root / f"{i}.png")
        (root / f"{i}.txt").write_text(f"picture {i}")
    return root


def test_a_second_run_reads_what_the_first_stored(autoencoder: Path, tmp_path: Path) -> None:
    model = load_autoencoder(autoencoder)
    data = DataConfig(kind="folder", path=str(_folder(tmp_path / "pics")), resolution=16)
    images = build_dataset(data, "train")
    first, said = stored_latents(model, images, data)
    assert said.startswith(f"latents: {len(first)} encoded and stored in {store_root()}")
    assert str(store_root()) == os.environ["LDMKIT_LATENT_STORE"]  # tests keep out of ~/.cache
    again, said = stored_latents(model, images, data)
    assert "read from" in said and "stored by an earlier run" in said
    assert len(again) == len(first)
    for i in range(len(first)):
        a, b = first[i], again[i]
        assert torch.equal(a["latent"], b["latent"])
        assert (a["label"], a["caption"]) == (b["label"], b["caption"])


def test_changed_data_or_first_stage_is_encoded_afresh(autoencoder: Path, tmp_path: Path) -> None:
    model = load_autoencoder(autoencoder)
    folder = _folder(tmp_path / "pics")
    data = DataConfig(kind="folder", path=str(folder), resolution=16)
    key = latent_key(model, data)
    (folder / "0.txt").write_text("a new caption")
    assert latent_key(model, data) != key
    assert latent_key(model, DataConfig(kind="folder", path=str(folder), resolution=8)) != key
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert latent_key(model, data) != latent_key(load_autoencoder(autoencoder), data)


def test_buckets_are_stored_by_shape(autoencoder: Path, tmp_path: Path) -> None:
    model = load_autoencoder(autoencoder)
    data = DataConfig(
        kind="folder", path=str(_folder(tmp_path / "pics")), resolution=16, fit="bucket",
        bucket_step=4, heldout_fraction=0.0,
    )  # fmt: skip
    images = build_dataset(data, "train")
    first, _ = stored_latents(model, images, data)
    again, said = stored_latents(model, images, data)
    assert "read from" in said
    assert again.sizes == first.sizes and len(set(first.sizes or [])) > 1
    assert all(torch.equal(first[i]["latent"], again[i]["latent"]) for i in range(len(first)))
