"""`ldmkit finetune` on a Stable Diffusion single file (tiny, random): LoRA on the UNet and the
frozen CLIP, written in three names that `sample --lora` reads; a full fine-tune that loads
alone; bad requests exit 2 naming what to change."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import ldmkit
from ldmkit.cli import app
from ldmkit.interop.lora import apply_lora

pytest.importorskip("peft", reason="LoRA training needs peft")
pytest.importorskip("transformers", reason="the CLIP encoder needs transformers")

from sd_layout import make_parts, sd1_state

runner = CliRunner()
SHORT = [
    *("--set", "data.resolution=32", "--set", "run.steps=3", "--set", "run.batch_size=2"),
    *("--set", "run.sample_every=0", "--set", "run.sample_count=2"),
    *("--set", "run.sample_steps=2", "--set", "optim.lr=1e-3", "--set", "optim.warmup_steps=0"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("finetune")
    save_file(sd1_state(make_parts()), str(root / "tiny-sd1.safetensors"))
    data, plain = root / "captioned", root / "plain"
    data.mkdir()
    plain.mkdir()
    lines = []
    for i in range(10):
        Image.new("RGB", (40 + i, 30), (20 * i, 100, 0)).save(data / f"{i}.png")
        Image.new("RGB", (40, 30), (20 * i, 0, 0)).save(plain / f"{i}.png")
        lines.append(json.dumps({"file_name": f"{i}.png", "text": f"a green photo number {i}"}))
    (data / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return {"sd": root / "tiny-sd1.safetensors", "data": data, "plain": plain}


def test_lora_on_unet_and_clip_writes_three_files_sample_reads(
    files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = ["finetune", str(files["sd"]), "--data", str(files["data"]), "--out", str(out)]
    result = runner.invoke(app, [*args, "--lora-rank", "2", "--lora-text-encoder", *SHORT])
    assert result.exit_code == 0, result.output
    written = json.loads(result.output.strip().splitlines()[-1])
    assert set(written) >= {"lora", "diffusers", "kohya"}
    own = load_file(written["lora"])
    clip_ups = [v for k, v in own.items() if k.startswith("text_encoder.") and "lora_up" in k]
    assert clip_ups and all(v.abs().max() > 0 for v in clip_ups)  # the frozen CLIP's adapters
    merged = {}
    for fmt in ("lora", "diffusers", "kohya"):
        model = ldmkit.load(files["sd"])
        apply_lora(model, Path(written[fmt]))
        merged[fmt] = model.unet.state_dict()
    for key, value in merged["lora"].items():
        for fmt in ("diffusers", "kohya"):
            torch.testing.assert_close(merged[fmt][key], value, rtol=0, atol=1e-6)
    sample = ["sample", "--checkpoint", str(files["sd"]), "--prompt", "a photo", "--n", "1"]
    sample += ["--steps", "2", "--latent-size", "8", "--out", str(tmp_path / "s.png")]
    result = runner.invoke(app, [*sample, "--lora", f"{written['kohya']}:0.8"])
    assert result.exit_code == 0, result.output


def test_a_full_fine_tune_of_a_single_file_loads_alone(
    files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = ["finetune", str(files["sd"]), "--data", str(files["data"]), "--out", str(out)]
    result = runner.invoke(app, [*args, *SHORT])
    assert result.exit_code == 0, result.output
    tuned = ldmkit.load(out / "model")  # its CLIP came from the file: the checkpoint keeps it
    assert (out / "model" / "clip" / "config.json").is_file()
    base = ldmkit.load(files["sd"])
    prompts = {"prompts": ["a green photo", ""]}
    with torch.no_grad():  # the CLIP is frozen: the same context as the file's
        torch.testing.assert_close(
            tuned.conditions(2, prompts, 1.0)[0]["context"],
            base.conditions(2, prompts, 1.0)[0]["context"],
        )
    changed = [
        not torch.equal(v, tuned.unet.state_dict()[k]) for k, v in base.unet.state_dict().items()
    ]
    assert any(changed)
    # ... and goes back to a single file with its CLIP.
    exported = runner.invoke(
        app, ["export", str(out / "model"), str(tmp_path / "tuned.safetensors"), "--format",
              "single-file"]
    )  # fmt: skip
    assert exported.exit_code == 0, exported.output
    again = ldmkit.load(tmp_path / "tuned.safetensors")
    for key, value in tuned.unet.state_dict().items():
        assert torch.equal(again.unet.state_dict()[key], value), key
    with torch.no_grad():
        torch.testing.assert_close(
            again.conditions(2, prompts, 1.0)[0]["context"],
            tuned.conditions(2, prompts, 1.0)[0]["context"],
        )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--lora-text-encoder"], "--lora-text-encoder needs --lora-rank"),
        (["--lora-rank", "-1"], "--lora-rank -1"),
        (["--set", "model.latent_size=8"], "keeps the model's own config"),
        (["--data", "PLAIN"], "no captions"),
    ],
)
def test_bad_requests_exit_2_naming_the_fix(
    files: dict[str, Path], tmp_path: Path, extra: list[str], message: str
) -> None:
    extra = [str(files["plain"]) if x == "PLAIN" else x for x in extra]
    data = [] if "--data" in extra else ["--data", str(files["data"])]
    args = ["finetune", str(files["sd"]), "--out", str(tmp_path / "run"), *data, *extra, *SHORT]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
