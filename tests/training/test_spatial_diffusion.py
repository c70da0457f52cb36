"""Super-resolution, inpainting and semantic-synthesis LDMs end to end: train (latents cached
with their images and maps), save, load, run through `ldmkit upscale` / `inpaint` / `sample
--semantic` / `eval spatial`, and the measurements."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ldmkit.checkpoint import load_latent_diffusion, training_data
from ldmkit.cli import app
from ldmkit.data.factory import build_dataset
from ldmkit.evaluation.restoration import border, evaluate_inpainting, evaluate_super_resolution
from ldmkit.evaluation.semantic import evaluate_semantic_synthesis
from ldmkit.precision import resolve_precision
from ldmkit.samplers import SamplingOptions
from ldmkit.training.diffusion_presets import DIFFUSION_PRESETS
from ldmkit.training.diffusion_trainer import train_diffusion

runner = CliRunner()


def _train(preset: str, autoencoder: Path, out: Path, **run) -> Path:
    config = DIFFUSION_PRESETS[preset]
    config = dataclasses.replace(
        config,
        autoencoder=str(autoencoder),
        run=dataclasses.replace(config.run, steps=4, sample_every=4, checkpoint_every=0, **run),
    )
    return train_diffusion(config, out, show_progress=False).model_dir


@pytest.fixture(scope="module")
def super_resolution(autoencoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train("tiny-sr", autoencoder, tmp_path_factory.mktemp("sr"))


@pytest.fixture(scope="module")
def inpainting(autoencoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train("tiny-inpaint", autoencoder, tmp_path_factory.mktemp("inpaint"))


def test_cached_and_uncached_training_agree(autoencoder: Path, tmp_path: Path) -> None:
    cached = _train("tiny-sr", autoencoder, tmp_path / "a")
    direct = _train("tiny-sr", autoencoder, tmp_path / "b", cache_latents=False)
    a, b = load_latent_diffusion(cached).unet, load_latent_diffusion(direct).unet
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.allclose(x, y, atol=1e-4), name
    grid = Image.open(tmp_path / "a" / "samples.png")
    assert grid.height > 2 * grid.width / 4  # three rows: input, output, original


def test_super_resolution_measures_against_bicubic(super_resolution: Path, tmp_path: Path) -> None:
    model = load_latent_diffusion(super_resolution)
    heldout = build_dataset(training_data(super_resolution), "heldout", 4)
    options = SamplingOptions(steps=2, guidance=1.0)
    result = evaluate_super_resolution(model, heldout, 4, options, grid=tmp_path / "g.png")
    assert result["n"] == 4 and result["task"] == "super-resolution x4"
    for name in ("ldm", "bicubic"):
        assert 0 < result[name]["psnr"]["mean"] < 100 and -1 <= result[name]["ssim"]["mean"] <= 1
    assert Image.open(tmp_path / "g.png").size[1] > Image.open(tmp_path / "g.png").size[0] / 4


def test_inpainting_measures_the_hole_and_keeps_known_pixels(inpainting: Path) -> None:
    model = load_latent_diffusion(inpainting)
    heldout = build_dataset(training_data(inpainting), "heldout", 4)
    result = evaluate_inpainting(model, heldout, 4, SamplingOptions(steps=2, guidance=1.0))
    assert 0 < result["hole_fraction"] < 0.7
    assert result["ldm"]["hole_psnr"]["mean"] < 100 and result["mean_fill"]["border_psnr"]["mean"]


def test_border_is_the_band_around_the_hole() -> None:
    mask = torch.zeros(1, 1, 12, 12)
    mask[..., 4:8, 4:8] = 1
    band = border(mask, width=1)
    assert band[0, 0, 5, 5] == 0 and band[0, 0, 4, 4] == 1 and band[0, 0, 3, 3] == 1
    assert band[0, 0, 0, 0] == 0


def _png(tensor: torch.Tensor, path: Path) -> Path:
    array = ((tensor.clamp(-1, 1) + 1) * 127.5).byte().permute(1, 2, 0).numpy()
    Image.fromarray(array).save(path)
    return path


def test_cli_upscales_a_larger_image_in_tiles(super_resolution: Path, tmp_path: Path) -> None:
    low = _png(torch.rand(3, 12, 20) * 2 - 1, tmp_path / "low.png")  # latent 24 x 40 > 16
    out = tmp_path / "big.png"
    args = ["upscale", str(low), str(out), "--checkpoint", str(super_resolution), "--steps", "2"]
    result = runner.invoke(app, [*args, "--precision", "auto"])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (80, 48)
    meta = json.loads(Image.open(out).text["ldmkit"])
    assert meta["steps"] == 2 and meta["compile"] is False
    assert meta["precision"] == resolve_precision("auto", torch.device("cpu"))  # what ran
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    result = runner.invoke(
        app, ["upscale", str(bad), str(out), "--checkpoint", str(super_resolution)]
    )
    assert result.exit_code == 2 and "cannot read image" in result.output


def test_cli_inpaints_and_refuses_a_wrong_mask(inpainting: Path, tmp_path: Path) -> None:
    image = _png(torch.rand(3, 32, 32) * 2 - 1, tmp_path / "image.png")
    hole = torch.full((3, 32, 32), -1.0)
    hole[:, 8:20, 8:20] = 1
    mask = _png(hole, tmp_path / "mask.png")
    out = tmp_path / "filled.png"
    ckpt = ["--checkpoint", str(inpainting), "--steps", "2"]
    args = ["inpaint", "--image", str(image), "--mask", str(mask), "--out", str(out), *ckpt]
    assert runner.invoke(app, args).exit_code == 0
    filled = torch.from_numpy(np.array(Image.open(out)))
    original = torch.from_numpy(np.array(Image.open(image)))
    assert torch.equal(filled[24:], original[24:])  # pasted back exactly
    small = _png(torch.zeros(3, 16, 16), tmp_path / "small.png")
    args = ["inpaint", "--image", str(image), "--mask", str(small), *ckpt]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "must have the image's size" in result.output
    args = ["eval", "spatial", "--checkpoint", str(inpainting), "--n", "2", "--steps", "2"]
    result = runner.invoke(app, [*args, "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output.strip().splitlines()[-1])
    assert scores["task"] == "inpainting" and scores["sampling_precision"] == "bf16"
    assert scores["compile"] is False


@pytest.mark.slow
def test_compiled_super_resolution_matches_eager(super_resolution: Path) -> None:
    model = load_latent_diffusion(super_resolution)
    heldout = build_dataset(training_data(super_resolution), "heldout", 2)
    options = SamplingOptions(steps=2, guidance=1.0)
    eager = evaluate_super_resolution(model, heldout, 2, options)
    compiled = evaluate_super_resolution(model, heldout, 2, options.replace(compile=True))
    assert compiled["compile"] is True and compiled["sampling_precision"] == "fp32"
    assert compiled["ldm"]["psnr"]["mean"] == pytest.approx(eager["ldm"]["psnr"]["mean"], abs=1e-3)


def test_semantic_synthesis_trains_samples_from_a_map_and_is_measured(
    autoencoder: Path, tmp_path: Path
) -> None:
    model_dir = _train("tiny-semantic", autoencoder, tmp_path / "run")
    model = load_latent_diffusion(model_dir)
    heldout = build_dataset(training_data(model_dir), "heldout", 4)
    options = SamplingOptions(steps=2, guidance=1.0)
    result = evaluate_semantic_synthesis(model, heldout, 4, options, grid=tmp_path / "g.png")
    assert result["real_images"]["pixel_accuracy"] > 0.95  # the colour reader on real images
    assert 0 <= result["ldm"]["mean_iou"] <= 1
    label_map = torch.zeros(32, 32, dtype=torch.uint8)
    label_map[8:24, 8:24] = 1 + 4  # a red square's class id + 1
    Image.fromarray(label_map.numpy()).save(tmp_path / "map.png")
    out = tmp_path / "from_map.png"
    args = ["sample", "--checkpoint", str(model_dir), "--semantic", str(tmp_path / "map.png")]
    result = runner.invoke(app, [*args, "--n", "2", "--steps", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    label_map[0, 0] = 200  # no such class
    Image.fromarray(label_map.numpy()).save(tmp_path / "bad.png")
    args[-1] = str(tmp_path / "bad.png")
    result = runner.invoke(app, [*args, "--steps", "1", "--out", str(out)])
    assert result.exit_code == 2 and "outside 0..30" in result.output
