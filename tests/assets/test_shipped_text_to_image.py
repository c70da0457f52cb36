"""The shipped text-to-image checkpoint: small, loads, and still reaches the adherence recorded in
its config.json (the quick setting the shipping script measured on the stored float16 weights)."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ldmkit.assets import SHAPES_EVALUATOR, SHAPES_TEXT_TO_IMAGE
from ldmkit.checkpoint import load_evaluator, load_latent_diffusion, read_config
from ldmkit.cli import app
from ldmkit.evaluation.adherence import evaluate_adherence
from ldmkit.samplers import SamplingOptions

MAX_BYTES = 25 * 1024 * 1024


def test_shipped_model_is_small_and_records_its_recipe() -> None:
    size = sum(p.stat().st_size for p in SHAPES_TEXT_TO_IMAGE.rglob("*") if p.is_file())
    assert size <= MAX_BYTES
    meta = read_config(SHAPES_TEXT_TO_IMAGE, "latent-diffusion")
    training = meta["training"]
    assert training["preset"] == "shapes-text" and "ldmkit train" in training["command"]
    assert isinstance(training["seed"], int)
    assert meta["adherence"]["n"] >= 300 and 0 < meta["adherence"]["both"] <= 1


@pytest.mark.slow
def test_shipped_model_reaches_its_recorded_adherence() -> None:
    check = read_config(SHAPES_TEXT_TO_IMAGE, "latent-diffusion")["check"]
    model = load_latent_diffusion(SHAPES_TEXT_TO_IMAGE)
    assert model.takes_prompts and model.config.conditioner("text") is not None
    scores = evaluate_adherence(
        model,
        load_evaluator(SHAPES_EVALUATOR),
        check["n"],
        SamplingOptions(check["sampler"], check["steps"], check["guidance"]),
    )
    # Same seeds and weights: equal on this machine; other CPUs round a little differently.
    assert scores["both"] >= check["both"] - 0.1
    assert scores["both"] > 0.3  # far above chance (1/30)


def test_demo_samples_the_shipped_model(tmp_path: Path) -> None:
    args = ["demo", "--prompt", "a large red circle", "--per-prompt", "2", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "text_to_image.png").is_file()
    report = (tmp_path / "report.md").read_text()
    assert "Recorded for this checkpoint" in report and "shapes_t2i` (shipped)" in report
