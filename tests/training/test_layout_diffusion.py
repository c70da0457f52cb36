"""Layout-to-image training: box tokens read by a transformer trained with the UNet, layout
dropout, snapshots with the boxes drawn, a checkpoint that samples from layouts, and the
layout evaluation on it."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ldmkit.checkpoint import load_latent_diffusion
from ldmkit.cli import app
from ldmkit.conditioning import LayoutConditioner
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset
from ldmkit.evaluation.generate import generate
from ldmkit.evaluation.layout import evaluate_layout
from ldmkit.metrics.class_evaluator import ClassEvaluator, EvaluatorConfig
from ldmkit.samplers import SamplingOptions
from ldmkit.training.config import DiffusionRunConfig
from ldmkit.training.diffusion_presets import DIFFUSION_PRESETS
from ldmkit.training.diffusion_trainer import train_diffusion

RED_CIRCLE, BLUE_STAR = 0, 3 * 6 + 3  # class = kind * 6 + colour


@pytest.fixture(scope="module")
def layout_model(
    autoencoder: Path,
    tmp_path_factory: pytest.TempPathFactory,
    tiny_run: Callable[..., DiffusionRunConfig],
) -> Path:
    preset = DIFFUSION_PRESETS["tiny-layout"]
    config = preset.__class__(
        autoencoder=str(autoencoder),
        model=preset.model,
        data=DataConfig(resolution=32, size=16),
        optim=preset.optim,
        run=tiny_run(),
    )
    run_dir = tmp_path_factory.mktemp("layout")
    result = train_diffusion(config, run_dir, show_progress=False)
    assert (run_dir / "samples.png").is_file()  # the snapshot, boxes drawn over the samples
    return result.model_dir


def test_layout_model_saves_and_samples_from_layouts(layout_model: Path) -> None:
    assert (layout_model / "layout_encoder.safetensors").is_file()
    assert not (layout_model / "tokenizer.json").exists()
    model = load_latent_diffusion(layout_model)
    assert model.takes_layouts and not model.takes_prompts
    layouts = [[(RED_CIRCLE, (0.1, 0.1, 0.5, 0.5))], [(BLUE_STAR, (0.4, 0.2, 0.9, 0.8))]]
    images = model.sample(2, layouts=layouts, options=SamplingOptions(steps=2, guidance=3.0))
    assert images.shape == (2, 3, 32, 32) and torch.isfinite(images).all()
    # The context of a layout differs from the null layout's, and depends on the boxes.
    context = model.context(layouts=[*layouts, []])
    assert not torch.allclose(context[0], context[2]) and not torch.allclose(context[0], context[1])
    # FID and checkpoint reports sample held-out layouts.
    options = SamplingOptions(steps=1, guidance=2.0)
    generated, labels, _ = generate(model, 3, options, batch_size=2)
    assert generated.shape == (3, 3, 32, 32) and labels is None
    with pytest.raises(ValueError, match="pass 2 layouts"):
        model.sample(2, layouts=layouts[:1], options=SamplingOptions(steps=1, guidance=3.0))
    with pytest.raises(ValueError, match="takes no prompts"):
        model.sample(2, layouts=layouts, prompts=["a", "b"], options=SamplingOptions(steps=1))
    with pytest.raises(ValueError, match=r"exceed layout\.max_objects=4"):
        model.sample(1, layouts=[[(0, (0.1, 0.1, 0.2, 0.2))] * 5], options=SamplingOptions(steps=1))


def test_layout_dropout_replaces_layouts_by_the_null_one(layout_model: Path) -> None:
    model = load_latent_diffusion(layout_model)
    layouts = [[(1, (0.0, 0.0, 0.5, 0.5))]] * 200
    generators = [torch.Generator().manual_seed(i) for i in range(200)]
    conditioner = model.conditioner("layouts")
    assert isinstance(conditioner, LayoutConditioner)
    kept = conditioner.with_dropout(layouts, generators)
    dropped = sum(1 for layout in kept if layout == [])
    assert 5 <= dropped <= 40  # layout_dropout 0.1 of 200


def test_layout_evaluation_runs_on_the_checkpoint(layout_model: Path, tmp_path: Path) -> None:
    model = load_latent_diffusion(layout_model)
    heldout = build_dataset(DataConfig(resolution=32, size=8), "heldout", 4)
    evaluator = ClassEvaluator(EvaluatorConfig(resolution=32))
    grid = tmp_path / "grid.png"
    options = SamplingOptions(steps=1, guidance=2.0)
    result = evaluate_layout(model, heldout, 4, evaluator, options, grid=grid)
    assert result["n"] == 4 and grid.is_file()
    for scores in (result["ldm"], result["real_images"]):
        assert scores["objects"] >= 4 and 0 <= scores["found_with_kind"] <= scores["found"] <= 1
    # The detector finds most real objects at their boxes even at 32 px.
    assert result["real_images"]["found"] >= 0.75


def test_cli_samples_a_layout_file_and_evaluates(layout_model: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    boxes = tmp_path / "boxes.json"
    boxes.write_text(
        json.dumps(
            [
                {"class": "red circle", "box": [0.1, 0.1, 0.45, 0.45]},
                {"class": BLUE_STAR, "box": [0.5, 0.5, 0.9, 0.9]},
            ]
        )
    )
    out = tmp_path / "layout.png"
    args = ["sample", "--checkpoint", str(layout_model), "--layout", str(boxes), "--n", "2"]
    result = runner.invoke(app, [*args, "--steps", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    recorded = json.loads(result.output.strip().splitlines()[-1])["layouts"]
    assert recorded == [json.loads(boxes.read_text())]  # the boxes themselves, not the file
    result = runner.invoke(app, ["sample", "--checkpoint", str(layout_model), "--steps", "1"])
    assert result.exit_code == 2 and "pass --layout BOXES.json" in result.output
    boxes.write_text(json.dumps([{"class": "pink circle", "box": [0, 0, 1, 1]}]))
    result = runner.invoke(app, [*args, "--steps", "1", "--out", str(out)])
    assert result.exit_code == 2 and "unknown colour 'pink'" in result.output
    args = ["eval", "layout", "--checkpoint", str(layout_model), "--n", "2", "--steps", "1"]
    result = runner.invoke(app, [*args, "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output.strip().splitlines()[-1])
    assert scores["task"] == "layout-to-image" and "found" in scores["ldm"]
    assert scores["sampling_precision"] == "bf16"
