"""The demo end to end on a tiny budget: both stages, every class sampled, scored and reported."""

import json
from pathlib import Path

import pytest
from PIL import Image

from ldmkit.assets import SHAPES_AUTOENCODER
from ldmkit.data.shapes import NUM_CLASSES
from ldmkit.demo import DemoConfig, run_demo


@pytest.mark.parametrize("train_autoencoder", [False, True])
def test_demo_writes_report_grid_and_scores(tmp_path: Path, train_autoencoder: bool) -> None:
    config = DemoConfig(
        train_autoencoder=train_autoencoder,
        autoencoder_steps=2,
        diffusion_steps=2,
        per_class=1,
        sampling_steps=2,
        heldout=8,
        train_images=64,
    )
    report = run_demo(tmp_path, config)
    ae = report["autoencoder"]
    if train_autoencoder:
        assert ae["steps"] == 2 and Path(ae["model"]).parent == tmp_path / "autoencoder"
    else:  # the shipped first stage: 2800 steps, recorded in its config
        assert ae["steps"] == 2800 and Path(ae["model"]) == SHAPES_AUTOENCODER
        assert ae["heldout_psnr_db"] > 28  # a trained autoencoder, not a random one
    assert report["latent_diffusion"]["steps"] == 2
    samples = report["samples"]
    assert samples["n"] == NUM_CLASSES
    assert 0 <= samples["adherence_both"] <= samples["adherence_kind"] <= 1
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert "samples_by_class.png" in (tmp_path / "report.md").read_text()
    grid = Image.open(tmp_path / "samples_by_class.png")
    assert grid.height >= NUM_CLASSES // 3 * 64  # a labelled row per class, in three panels
    assert (tmp_path / "ldm" / "model" / "config.json").exists()
