"""`--lora` on the eval commands: the LoRA is merged before sampling and named in the report;
a missing file exits 2 naming `--lora`."""

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import ldmkit
from ldmkit.assets import SHAPES_TEXT_TO_IMAGE
from ldmkit.cli import app
from ldmkit.interop.lora import write_lora

pytest.importorskip("peft", reason="the LoRA is made with peft")
from ldmkit.training.lora import Adapters
from ldmkit.training.lora_settings import LoraSettings

runner = CliRunner()


def test_eval_adherence_merges_the_lora_and_names_it(tmp_path: Path) -> None:
    model = ldmkit.load(SHAPES_TEXT_TO_IMAGE)
    adapters = Adapters(model, LoraSettings(rank=2))
    torch.manual_seed(0)
    with torch.no_grad():
        for p in adapters.parameters():
            p.copy_(torch.randn_like(p))
    lora = write_lora(model, adapters.pairs(), tmp_path / "strong.safetensors", "kohya")
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
