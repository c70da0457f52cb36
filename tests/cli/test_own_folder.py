"""The README's own-folder workflow on a small folder: `--data DIR` on train and eval, a held-out
split recorded in the run and used by eval, bad files counted, never the shapes evaluator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ldmkit.cli import app

runner = CliRunner()
RUN = [
    "--set", "run.steps=2",
    "--set", "run.checkpoint_every=2",
]  # fmt: skip
AE = [*RUN, "--set", "run.image_every=2", "--set", "run.heldout_images=4"]
AE += ["--set", "run.latent_stat_batches=1"]


def _class_folder(root: Path) -> Path:
    """Three classes of odd-sized RGBA / palette images, and two files that are not images."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(("cat", "dog", "owl")):
        for i in range(8):
            folder = root / name
            folder.mkdir(parents=True, exist_ok=True)
            size = (int(rng.integers(12, 90)), int(rng.integers(7, 60)))
            pixels = rng.integers(0, 255, (size[1], size[0], 4), dtype=np.uint8)
            pixels[..., 0] = 80 * c
            image = Image.fromarray(pixels, "RGBA")
            (image.convert("P") if i % 3 == 0 else image).save(folder / f"{i}.png")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG cut short")
    (root / "owl" / "empty.jpg").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("own")
    data = _class_folder(base / "pets")
    ae_run = base / "ae"
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        result = runner.invoke(
            app,
            [
                *("train-autoencoder", "--preset", "tiny", "--data", str(data)),
                *("--out", str(ae_run), *AE),
                *("--set", "data.fit=pad", "--set", "data.heldout_fraction=0.2"),
            ],
        )
    assert result.exit_code == 0, result.output
    ldm_run = base / "ldm"
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        result = runner.invoke(
            app,
            [
                *("train", "--preset", "tiny", "--data", str(data), "--out", str(ldm_run)),
                *("--autoencoder", str(ae_run / "model"), *RUN, "--set", "run.sample_every=2"),
                *("--set", "data.heldout_fraction=0.2"),
            ],
        )
    assert result.exit_code == 0, result.output
    assert "3 classes from the sub-folders" in result.output
    return {"data": data, "ae": ae_run, "ldm": ldm_run}


def test_the_run_records_its_split_and_counts_bad_files(trained: dict[str, Path]) -> None:
    for run in (trained["ae"], trained["ldm"]):
        record = json.loads((run / "data.json").read_text())
        assert record["data"]["kind"] == "folder"
        held, train = record["heldout_files"], record["train_images"]
        bad = {Path(line.split(":")[0]).name for line in record["skipped"]}
        assert bad <= {"broken.png", "empty.jpg"}
        assert len(held) + train + len(bad) == 26  # every file on one side, bad ones left out
        assert len(held) >= 1
        history = json.loads((run / "history.json").read_text())
        row = next(r for r in history if "data_skipped" in r)
        assert (row["data_images"], row["data_skipped"]) == (train, len(bad))
    config = json.loads((trained["ldm"] / "model" / "config.json").read_text())
    assert config["config"]["conditioners"][0]["num_classes"] == 3
    assert config["training"]["class_names"] == ["cat", "dog", "owl"]  # names the grid's rows


def test_eval_reconstruction_scores_the_heldout_split_and_saves_a_grid(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    grid = tmp_path / "rec.png"
    model = str(trained["ae"] / "model")
    result = runner.invoke(
        app, ["eval", "reconstruction", "--checkpoint", model, "--n", "50", "--grid", str(grid)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output.strip().splitlines()[-1])
    held = json.loads((trained["ae"] / "data.json").read_text())["heldout_files"]
    held_bad = [name for name in held if name.endswith(("broken.png", "empty.jpg"))]
    assert metrics["n"] == len(held) - len(held_bad)  # the held-out files, not training ones
    assert metrics["data"] == "auto: folder held-out" and metrics["rfid"].startswith("not scored")
    picture = Image.open(grid)
    assert picture.height > 2 * 32 and picture.width >= min(8, metrics["n"]) * 32


def test_no_shapes_evaluator_by_accident(trained: dict[str, Path]) -> None:
    model = str(trained["ldm"] / "model")
    for command in (["eval", "checkpoint"], ["eval", "adherence"], ["eval", "fid", "--fake"]):
        args = [*command, model] if command[-1] == "--fake" else [*command, "--checkpoint", model]
        result = runner.invoke(app, [*args, "--n", "4", "--steps", "2"])
        assert result.exit_code == 2, result.output
        assert "was trained on folder data" in result.output
        assert "--evaluator" in result.output


def test_bad_data_argument_names_the_option(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = runner.invoke(
        app, ["train-autoencoder", "--out", str(tmp_path / "r"), "--data", str(missing)]
    )
    said = " ".join(result.output.replace("│", " ").split())  # the error box wraps lines
    assert result.exit_code == 2 and "--data" in said and "no such folder" in said
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "a.png")
    Image.new("RGB", (8, 8)).save(flat / "b.png")
    result = runner.invoke(
        app,
        ["train", "--preset", "tiny", "--data", str(flat), "--out", str(tmp_path / "l"),
         "--autoencoder", "pixels"],
    )  # fmt: skip
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "one sub-folder per class" in said


@pytest.mark.parametrize("preset", ["tiny-text", "tiny-uncond"])
def test_text_and_unconditional_models_train_on_a_captioned_folder(
    preset: str, tmp_path: Path
) -> None:
    data = tmp_path / "captioned"
    data.mkdir()
    lines = []
    for i in range(12):
        Image.new("RGB", (40 + i, 30), (20 * i, 100, 0)).save(data / f"{i}.png")
        lines.append(json.dumps({"file_name": f"{i}.png", "text": f"a green photo number {i}"}))
    (data / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    result = runner.invoke(
        app,
        [
            *("train", "--preset", preset, "--data", str(data), "--out", str(tmp_path / "run")),
            *("--autoencoder", "pixels", "--set", "model.latent_size=32", *RUN),
            *("--set", "run.sample_every=2"),
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "run" / "data.json").read_text())
    assert record["train_images"] + len(record["heldout_files"]) == 12
    assert (tmp_path / "run" / "samples.png").is_file()


def test_a_folder_evaluator_scores_the_folder_class_model(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    evaluator = tmp_path / "evaluator"
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        result = runner.invoke(
            app,
            [
                *("train-evaluator", "--data", str(trained["data"]), "--out", str(evaluator)),
                *("--steps", "3", "--resolution", "32"),
            ],
        )
    assert result.exit_code == 0, result.output
    assert 0 <= json.loads(result.output.strip().splitlines()[-1])["heldout_class"] <= 1
    model = str(trained["ldm"] / "model")
    result = runner.invoke(
        app,
        [
            *("eval", "adherence", "--checkpoint", model, "--evaluator", str(evaluator)),
            *("--n", "6", "--steps", "2"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert 0 <= json.loads(result.output.strip().splitlines()[-1])["class"] <= 1


def test_eval_reconstruction_reads_the_data_as_set(trained: dict[str, Path]) -> None:
    model = str(trained["ae"] / "model")
    base = ["eval", "reconstruction", "--checkpoint", model, "--n", "100"]
    plain = runner.invoke(app, base)
    doubled = runner.invoke(app, [*base, "--set", "data.crops_per_image=2"])
    assert plain.exit_code == 0 and doubled.exit_code == 0, doubled.output
    n = [json.loads(r.output.strip().splitlines()[-1])["n"] for r in (plain, doubled)]
    assert n[1] == 2 * n[0]
    refused = runner.invoke(app, [*base, "--set", "run.steps=3"])
    assert refused.exit_code == 2 and "only data.* settings apply here" in refused.output


@pytest.mark.slow
def test_folder_models_are_scored_in_inception_features(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    import torch

    from ldmkit.metrics.inception import InceptionV3

    weights = tmp_path / "inception.pth"
    torch.save(InceptionV3().state_dict(), weights)  # random weights: the path, not the value
    model = str(trained["ldm"] / "model")
    result = runner.invoke(
        app,
        [
            *("eval", "checkpoint", "--checkpoint", model, "--inception", str(weights)),
            *("--n", "2", "--steps", "1"),
        ],
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output.strip().splitlines()[-1])
    assert scores["features"].startswith("inception-v3") and scores["fid"] >= 0
    assert scores["adherence"].startswith("not scored: pass --evaluator")
    ae = str(trained["ae"] / "model")
    result = runner.invoke(
        app,
        ["eval", "reconstruction", "--checkpoint", ae, "--inception", str(weights), "--n", "2"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["rfid"] >= 0  # rFID for folders
