"""The demos on a tiny budget: text-to-image from a checkpoint (prompts sampled, one-object ones
scored), and the class-conditional pipeline (both stages, every class sampled and scored)."""

import dataclasses
import json
from pathlib import Path

import pytest
from PIL import Image

from ldmkit.assets import SHAPES_AUTOENCODER
from ldmkit.data.config import DataConfig
from ldmkit.data.shapes import NUM_CLASSES
from ldmkit.demo import DemoConfig, TextDemoConfig, prompt_class, run_demo, run_text_demo
from ldmkit.training.diffusion_presets import DIFFUSION_PRESETS
from ldmkit.training.diffusion_trainer import train_diffusion


@pytest.mark.slow
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


def test_prompt_class_reads_one_object_prompts() -> None:
    assert prompt_class("a small red circle") == 0
    assert prompt_class("A large blue star") == 3 * 6 + 2
    assert prompt_class("a large orange circle above a small blue square") is None
    assert prompt_class("a huge red circle") is None and prompt_class("a small pink circle") is None


@pytest.fixture(scope="module")
def tiny_text_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny text model on the shipped autoencoder's latents, trained for two steps."""
    preset = DIFFUSION_PRESETS["tiny-text"]
    config = dataclasses.replace(
        preset,
        autoencoder=str(SHAPES_AUTOENCODER),
        data=DataConfig(resolution=64, size=16),
        run=dataclasses.replace(preset.run, steps=2, sample_every=0, checkpoint_every=2),
    )
    return train_diffusion(config, tmp_path_factory.mktemp("t2i"), show_progress=False).model_dir


def test_text_demo_samples_every_prompt_and_scores_the_one_object_ones(
    tmp_path: Path, tiny_text_model: Path
) -> None:
    prompts = ("a small red circle", "a large blue star above a small red ring")
    config = TextDemoConfig(prompts=prompts, per_prompt=2, sampling_steps=1)
    report = run_text_demo(tmp_path, config, checkpoint=tiny_text_model)
    assert report["one_object_samples"] == 2 and report["trained_minutes"] is None
    assert 0 <= report["adherence"]["both"] <= report["adherence"]["kind"] <= 1
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert "text_to_image.png" in (tmp_path / "report.md").read_text()
    assert "(given)" in (tmp_path / "report.md").read_text()  # not the shipped model
    assert Image.open(tmp_path / "text_to_image.png").height >= 2 * 64  # a row per prompt


def test_demo_command_checks_its_options(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ldmkit.cli import app

    args = ["demo", "--checkpoint", str(tmp_path), "--per-prompt", "0"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--per-prompt must be >= 1" in result.output
    result = CliRunner().invoke(app, ["demo", "--classes", "--train", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--classes trains its own model" in result.output
