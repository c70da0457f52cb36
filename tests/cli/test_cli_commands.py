"""The command line: train, evaluate, presets, and clear errors for bad input."""

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from ldmkit.cli import app
from ldmkit.metrics.inception import InceptionV3
from ldmkit.precision import resolve_precision

runner = CliRunner()
TINY = [
    "--preset",
    "tiny",
    "--set",
    "run.steps=4",
    "--set",
    "data.size=32",
    "--set",
    "run.image_every=2",
    "--set",
    "run.checkpoint_every=2",
    "--set",
    "run.heldout_images=4",
    "--set",
    "run.latent_stat_batches=1",
]


def test_train_then_eval_reconstruction(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train-autoencoder", "--out", str(tmp_path), *TINY])
    assert result.exit_code == 0, result.output
    model = json.loads(result.output.strip().splitlines()[-1])["model"]
    result = runner.invoke(app, ["eval", "reconstruction", "--checkpoint", model, "--n", "12"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output.strip().splitlines()[-1])
    assert metrics["n"] == 12 and metrics["resolution"] == 32
    assert 0 < metrics["psnr"] < 100 and -1 <= metrics["ssim"] <= 1
    assert metrics["encode_images_per_s"] > 0
    assert metrics["rfid"] >= 0  # shapes: in the shipped evaluator's features


def test_bad_config_key_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["train-autoencoder", "--out", str(tmp_path), "--set", "run.stepz=3"]
    )
    assert result.exit_code == 2
    assert "unknown key 'stepz'" in result.output and "steps" in result.output
    result = runner.invoke(app, ["train-autoencoder", "--out", str(tmp_path), "--preset", "nope"])
    assert result.exit_code == 2 and "kl-f4" in result.output


def test_eval_on_a_non_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", "reconstruction", "--checkpoint", str(tmp_path)])
    assert result.exit_code == 2 and "config.json is missing" in result.output


def test_presets_listing_and_yaml() -> None:
    result = runner.invoke(app, ["presets"])
    assert result.exit_code == 0 and "kl-f8-paper" in result.output
    result = runner.invoke(app, ["presets", "vq-f4"])
    assert result.exit_code == 0 and "kind: vq" in result.output


def test_data_prepare_unknown_name() -> None:
    result = runner.invoke(app, ["data", "prepare", "imagenet"])
    assert result.exit_code == 2 and "fashion-mnist" in result.output


def test_train_ldm_then_sample_with_metadata(tmp_path: Path) -> None:
    from PIL import Image

    result = runner.invoke(app, ["train-autoencoder", "--out", str(tmp_path / "ae"), *TINY])
    assert result.exit_code == 0, result.output
    ae = json.loads(result.output.strip().splitlines()[-1])["model"]
    args = [
        "train",
        "--preset",
        "tiny",
        "--autoencoder",
        ae,
        "--out",
        str(tmp_path / "ldm"),
        "--set",
        "run.steps=4",
        "--set",
        "data.size=16",
        "--set",
        "run.sample_every=0",
        "--set",
        "run.checkpoint_every=2",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    ldm = json.loads(result.output.strip().splitlines()[-1])["model"]
    out = tmp_path / "grid.png"
    result = runner.invoke(
        app,
        [
            "sample",
            "--checkpoint",
            ldm,
            "--n",
            "3",
            "--steps",
            "2",
            "--class",
            "7",
            "--seed",
            "5",
            "--out",
            str(out),
            "--singles",
        ],
    )
    assert result.exit_code == 0, result.output
    meta = json.loads(Image.open(out).text["ldmkit"])
    options = {"sampler": "ddim", "steps": 2, "guidance": 3.0, "seed": 5, "precision": "fp32"}
    assert {k: meta[k] for k in options} == options and meta["tile"] is None
    assert (meta["checkpoint"], meta["count"], meta["classes"]) == (ldm, 3, [7])
    assert "index" not in meta  # a grid is the whole batch
    assert len(meta["model_hash"]) == 10 and meta["weights"] == "fp32"
    single = Image.open(tmp_path / "grid-001.png")
    recorded = json.loads(single.text["ldmkit"])  # the batch, and which image of it
    assert (recorded["seed"], recorded["count"], recorded["index"]) == (5, 3, 1)
    assert "Seed: 6," in single.text["parameters"] and "Steps: 2," in single.text["parameters"]
    again = tmp_path / "again.png"  # --from reruns the batch and keeps that image, bit for bit
    result = runner.invoke(
        app, ["sample", "--from", str(tmp_path / "grid-001.png"), "--out", str(again)]
    )
    assert result.exit_code == 0, result.output
    assert Image.open(again).tobytes() == single.tobytes()
    result = runner.invoke(app, ["sample", "--from", str(out), "--out", str(again)])
    assert result.exit_code == 0, result.output  # and a grid's record reruns the whole grid
    assert Image.open(again).tobytes() == Image.open(out).tobytes()
    other = tmp_path / "other.png"  # a flag given beside --from changes that, and only that
    args = ["sample", "--from", str(tmp_path / "grid-001.png"), "--out", str(other), "--seed", "9"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    changed = json.loads(Image.open(other).text["ldmkit"])
    assert (changed["seed"], changed["classes"], changed["steps"]) == (9, [7], 2)
    result = runner.invoke(app, ["inspect", str(tmp_path / "grid-001.png")])
    assert result.exit_code == 0 and "Seed: 6," in result.output and '"index": 1' in result.output
    result = runner.invoke(app, ["inspect", str(tmp_path / "nothing.png")])
    assert result.exit_code == 2 and "cannot read it as an image" in result.output
    by_class = tmp_path / "by_class.png"
    args = ["sample", "--checkpoint", ldm, "--per-class", "2", "--steps", "1", "--out"]
    result = runner.invoke(app, [*args, str(by_class), "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    meta = json.loads(Image.open(by_class).text["ldmkit"])
    assert meta["count"] == 60 and meta["precision"] == "bf16"  # 30 classes x 2, UNet in bf16
    assert Image.open(by_class).height >= 30 * 32  # one labelled row of 32 px images per class
    big = tmp_path / "big.png"
    args = ["sample", "--checkpoint", ldm, "--n", "1", "--steps", "1", "--latent-size", "32"]
    result = runner.invoke(app, [*args, "--tile", "16", "--out", str(big), "--singles"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "big-000.png").size == (64, 64)  # twice the training side
    edited = tmp_path / "edited.png"
    args = ["sample", "--checkpoint", ldm, "--n", "2", "--steps", "4", "--out", str(edited)]
    init = ["--init-image", str(tmp_path / "grid-000.png"), "--strength", "0.5"]
    result = runner.invoke(app, [*args, *init, "--precision", "auto"])
    assert result.exit_code == 0, result.output
    meta = json.loads(Image.open(edited).text["ldmkit"])
    assert meta["strength"] == 0.5  # and auto is recorded as what ran:
    assert meta["precision"] == resolve_precision("auto", torch.device("cpu"))
    result = runner.invoke(app, [*args, "--precision", "half"])
    assert result.exit_code == 2 and "one of auto, fp32, bf16, fp16; got 'half'" in result.output
    args = ["eval", "fid", "--fake", ldm, "--n", "6", "--steps", "1", "--precision", "bf16"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output.strip().splitlines()[-1])
    assert scores["n"] == 6 and scores["real"] == "auto: shapes held-out"
    assert scores["fid"] >= 0 and scores["images_per_s"] > 0 and "kid" in scores
    assert scores["features"] == "evaluator" and 0 <= scores["precision"] <= 1
    assert scores["sampling_precision"] == "bf16" and scores["compile"] is False
    report = tmp_path / "eval.md"
    args = ["eval", "checkpoint", "--checkpoint", ldm, "--n", "6", "--steps", "1", "--out"]
    result = runner.invoke(app, [*args, str(report)])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output.strip().splitlines()[-1])
    assert scores["fid"] >= 0 and 0 <= scores["adherence_both"] <= 1 and scores["images_per_s"] > 0
    assert "| adherence_both |" in report.read_text()
    folder = tmp_path / "generated"
    folder.mkdir()
    for i in range(3):
        (tmp_path / f"grid-{i:03d}.png").rename(folder / f"{i}.png")
    result = runner.invoke(app, ["eval", "fid", "--fake", str(folder), "--n", "3"])
    assert result.exit_code == 2 and "--real auto needs an LDM checkpoint" in result.output
    args = ["eval", "fid", "--fake", str(folder), "--real", "shapes", "--n", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["fid"] >= 0
    # The standard FID network from a local file (random weights here), or a clear error.
    result = runner.invoke(app, [*args, "--inception", str(tmp_path / "absent.pth")])
    assert result.exit_code == 2 and "pt_inception-2015-12-05-6726825d.pth" in result.output
    weights = tmp_path / "inception.pth"
    torch.save(InceptionV3().state_dict(), weights)
    result = runner.invoke(app, [*args, "--inception", str(weights)])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output.strip().splitlines()[-1])
    assert scores["features"] == "inception-v3 (pytorch-fid preprocessing)" and scores["fid"] >= 0
    result = runner.invoke(app, ["sample", "--checkpoint", ldm, "--class", "30"])
    assert result.exit_code == 2 and "--class must be in 0..29" in result.output
    result = runner.invoke(app, ["sample", "--checkpoint", ae])
    assert result.exit_code == 2 and "holds a 'autoencoder' checkpoint" in result.output


def test_text_model_trains_and_samples_from_prompts(tmp_path: Path) -> None:
    from PIL import Image

    result = runner.invoke(app, ["train-autoencoder", "--out", str(tmp_path / "ae"), *TINY])
    assert result.exit_code == 0, result.output
    ae = json.loads(result.output.strip().splitlines()[-1])["model"]
    args = ["train", "--preset", "tiny-text", "--autoencoder", ae, "--out", str(tmp_path / "t2i")]
    sets = ["run.steps=2", "data.size=16", "run.sample_every=0"]
    result = runner.invoke(app, [*args, *(x for s in sets for x in ("--set", s))])
    assert result.exit_code == 0, result.output
    model = str(tmp_path / "t2i" / "model")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a small red circle\n\na large blue star\n")
    out = tmp_path / "t2i.png"
    args = ["sample", "--checkpoint", model, "--prompts", str(prompts), "--per-prompt", "2"]
    result = runner.invoke(app, [*args, "--steps", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    meta = json.loads(Image.open(out).text["ldmkit"])
    assert meta["count"] == 4 and meta["prompts"][::2] == [
        "a small red circle",
        "a large blue star",
    ]
    result = runner.invoke(app, ["sample", "--checkpoint", model, "--steps", "1"])
    assert result.exit_code == 2 and "pass --prompt TEXT or --prompts FILE" in result.output
    args = ["eval", "relations", "--checkpoint", model, "--n", "2", "--steps", "1"]
    result = runner.invoke(app, [*args, "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output.strip().splitlines()[-1])
    assert scores["n"] == 2 and 0 <= scores["ldm"]["all"] <= scores["ldm"]["both_colours"] <= 1
    assert scores["sampling_precision"] == "bf16"
