"""`--lora` on the eval commands: the LoRA is merged before sampling and named in the report;
a missing file exits 2 naming `--lora`."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ldmkit.assets import SHAPES_TEXT_TO_IMAGE
from ldmkit.cli import app

pytest.importorskip("peft", reason="the LoRA is made with peft")
from tiny_models import strong_random_lora

runner = CliRunner()


def test_eval_adherence_merges_the_lora_and_names_it(tmp_path: Path) -> None:
    lora = strong_random_lora(tmp_path / "strong.safetensors")
    args = ["eval", "adherence", "--checkpoint", str(SHAPES_TEXT_TO_IMAGE), "--n", "6"]
    args += ["--steps", "3"]
    plain = runner.invoke(app, args)
    merged = runner.invoke(app, [*args, "--lora", f"{lora}:1.0"])
    assert plain.exit_code == 0 and merged.exit_code == 0, plain.output + merged.output
    a, b = (json.loads(r.output.strip().splitlines()[-1]) for r in (plain, merged))
    assert "loras" not in a and b["loras"][0]["name"] == "strong"
    assert (a["kind"], a["color"]) != (b["kind"], b["color"])  # a random LoRA this strong
    missing = runner.invoke(app, [*args, "--lora", "gone.safetensors"])
    assert missing.exit_code == 2 and "--lora" in missing.output
