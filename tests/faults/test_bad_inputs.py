"""Every command fed bad values: each must exit 2 with a message that names the argument (or
config key), the value and the fix, before any work and without a traceback or an output file;
what a prompt loses (unknown words, a cut) is said, not hidden."""

import pickle
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from ldmkit.assets import SHAPES_AUTOENCODER, SHAPES_TEXT_TO_IMAGE
from ldmkit.autoencoder import Autoencoder, AutoencoderConfig
from ldmkit.checkpoint import save_autoencoder
from ldmkit.cli import app
from ldmkit.conditioning import PromptWarning

T2I = str(SHAPES_TEXT_TO_IMAGE)
SAMPLE = ["sample", "--checkpoint", T2I, "--prompt", "a red circle", "--steps", "1"]
TRAIN = ["train", "--preset", "shapes-text", "--autoencoder", str(SHAPES_AUTOENCODER)]
TRAIN_AE = ["train-autoencoder", "--preset", "tiny"]
INPAINT = [
    "inpaint",
    "--checkpoint",
    T2I,
    "--image",
    "{files}/odd.png",
    "--mask",
    "{files}/odd.png",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inputs the cases point at: a broken YAML, a pickle named .safetensors, an image whose
    side is no multiple of f, and an LDM whose first stage was swapped for an f=2 one."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "broken.yaml").write_text("run: [steps: 3\n")
    (root / "pickle.safetensors").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    Image.new("RGB", (98, 64), "red").save(root / "odd.png")
    swapped = root / "swapped"
    shutil.copytree(SHAPES_TEXT_TO_IMAGE, swapped)
    shutil.rmtree(swapped / "autoencoder")
    small = AutoencoderConfig(
        model_channels=8, channel_mult=(1, 2), num_res_blocks=1, norm_groups=4
    )
    save_autoencoder(Autoencoder(small), swapped / "autoencoder")
    return root


CASES = {
    "--n 0": ([*SAMPLE, "--n", "0"], "--n must be an integer >= 1; got 0"),
    "--n -2": ([*SAMPLE, "--n", "-2"], "--n must be an integer >= 1; got -2"),
    "--per-class 0": ([*SAMPLE, "--per-class", "0"], "--per-class must be an integer >= 1"),
    "--latent-size -4": ([*SAMPLE, "--latent-size", "-4"], "--latent-size must be an integer >= 1"),
    "--latent-size 0": ([*SAMPLE, "--latent-size", "0"], "leave it out for the default"),
    "--strength 1.5": ([*SAMPLE, "--strength", "1.5"], "--strength must be a number in (0, 1]"),
    "--out x.jpg2": ([*SAMPLE, "--out", "{tmp}/x.jpg2"], ".jpg2 is not an image format"),
    "--out a folder": ([*SAMPLE, "--out", "{tmp}"], "is not an image format this writes"),
    "--device cuda": ([*SAMPLE, "--device", "cuda"], "CUDA is not available here; use --device"),
    "--device gpu7": ([*SAMPLE, "--device", "gpu7"], "'gpu7' is not a device name"),
    "--guidance nan": ([*SAMPLE, "--guidance", "nan"], "guidance must be a finite number"),
    "--guidance inf": ([*SAMPLE, "--guidance", "inf"], "guidance must be a finite number"),
    "a LoRA tag in --prompt": (
        ["sample", "--checkpoint", T2I, "--prompt", "a red circle <lora:style:0.8>"],
        "'<lora:style:0.8>' in a prompt is a LoRA tag, which the model would read as words",
    ),
    "--guidance-rescale 2": ([*SAMPLE, "--guidance-rescale", "2"], "guidance_rescale must be"),
    "--steps 0": ([*SAMPLE, "--steps", "0"], "steps must be an integer >= 1"),
    "--init-image 98x64": (
        [*SAMPLE, "--init-image", "{files}/odd.png"],
        "is 98x64 pixels; each side must be a multiple of the first stage's f=4",
    ),
    "a swapped first stage": (
        ["sample", "--checkpoint", "{files}/swapped", "--prompt", "a red circle"],
        "is not the first stage this LDM was trained on: factor 2 (trained on 4)",
    ),
    "a missing checkpoint": (
        ["sample", "--checkpoint", "{tmp}/nowhere"],
        "is not an ldmkit checkpoint",
    ),
    "upscale OUT x.gif2": (
        ["upscale", "{files}/odd.png", "{tmp}/up.gif2", "--checkpoint", T2I],
        ".gif2 is not an image format",
    ),
    "inpaint --out o.xyz": (
        [*INPAINT, "--out", "{tmp}/o.xyz"],
        ".xyz is not an image format",
    ),
    "export --format onnx": (
        ["export", T2I, "{tmp}/out", "--format", "onnx"],
        "--format must be one of diffusers, single-file; got 'onnx'",
    ),
    "export a missing model": (["export", "{tmp}/nowhere", "{tmp}/out"], "is not an ldmkit"),
    "export a text model as a single file": (
        ["export", T2I, "{tmp}/t2i.safetensors", "--format", "single-file"],
        "holds a UNet, a first stage and CLIP",
    ),
    "eval checkpoint --n 0": (
        ["eval", "checkpoint", "--checkpoint", T2I, "--n", "0"],
        "--n must be an integer >= 1",
    ),
    "eval layout --n 0": (["eval", "layout", "--checkpoint", T2I, "--n", "0"], "--n must be"),
    "eval relations --n 0": (["eval", "relations", "--checkpoint", T2I, "--n", "0"], "--n must"),
    "eval spatial --n 0": (["eval", "spatial", "--checkpoint", T2I, "--n", "0"], "--n must be"),
    "eval spatial of a text model": (
        ["eval", "spatial", "--checkpoint", T2I, "--n", "2"],
        "has no spatial condition; use `ldmkit eval checkpoint`",
    ),
    "eval reconstruction --batch-size 0": (
        ["eval", "reconstruction", "--checkpoint", str(SHAPES_AUTOENCODER), "--batch-size", "0"],
        "--batch-size must be an integer >= 1; got 0",
    ),
    "train-evaluator --steps -1": (
        ["train-evaluator", "--out", "{tmp}/evaluator", "--steps", "-1"],
        "--steps must be an integer >= 1; got -1",
    ),
    "train-evaluator --resolution 16 (shapes)": (
        ["train-evaluator", "--out", "{tmp}/evaluator", "--resolution", "16"],
        "ShapesConfig.resolution must be an int in [32, 512]",
    ),
    "data prepare an unknown set": (["data", "prepare", "nosuchset"], "unknown dataset"),
    "upscale a missing image": (
        ["upscale", "{tmp}/none.png", "{tmp}/up.png", "--checkpoint", T2I],
        "cannot read image",
    ),
    "eval fid --n 0": (["eval", "fid", "--fake", T2I, "--n", "0"], "--n must be an integer >= 1"),
    "eval fid pickled inception": (
        ["eval", "fid", "--fake", T2I, "--n", "2", "--inception", "{files}/pickle.safetensors"],
        "is not a readable safetensors file",
    ),
    "eval adherence --n -1": (
        ["eval", "adherence", "--checkpoint", T2I, "--n", "-1"],
        "--n must be an integer >= 1",
    ),
    "train run.batch_size=0": (
        [*TRAIN, "--out", "{tmp}/run", "--set", "run.batch_size=0"],
        "run: batch_size must be >= 1; got 0",
    ),
    "train run.steps=-5": (
        [*TRAIN, "--out", "{tmp}/run", "--set", "run.steps=-5"],
        "run: steps must be >= 1; got -5",
    ),
    "train run.ema_decay=1": (
        [*TRAIN, "--out", "{tmp}/run", "--set", "run.ema_decay=1"],
        "ema_decay must be in [0, 1); got 1.0",
    ),
    "train a malformed --set": (
        [*TRAIN, "--out", "{tmp}/run", "--set", "run.steps=[1,"],
        "override run.steps=[1,: not a YAML value",
    ),
    "train an unknown key": (
        [*TRAIN, "--out", "{tmp}/run", "--set", "run.stpes=3"],
        "unknown key 'stpes'; valid keys here",
    ),
    "train broken YAML": (
        ["train", "--config", "{files}/broken.yaml", "--out", "{tmp}/run"],
        "is not valid YAML: expected ',' or ']'",
    ),
    "train-autoencoder run.batch_size=0": (
        [*TRAIN_AE, "--out", "{tmp}/ae", "--set", "run.batch_size=0"],
        "run: batch_size must be >= 1; got 0",
    ),
    "train-autoencoder a pickled LPIPS file": (
        [
            *TRAIN_AE,
            "--out",
            "{tmp}/ae",
            "--set",
            "loss.perceptual_weight=1.0",
            "--set",
            "loss.lpips_vgg_path={files}/pickle.safetensors",
            "--set",
            "loss.lpips_lin_path={files}/pickle.safetensors",
        ],
        "is not a readable safetensors file",
    ),
    "train-autoencoder run.max_minutes=nan": (
        [*TRAIN_AE, "--out", "{tmp}/ae", "--set", "run.max_minutes=.nan"],
        "max_minutes must be a finite number >= 0",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_value_exits_2_naming_it(case: str, files: Path, tmp_path: Path) -> None:
    arguments, expected = CASES[case]
    filled = [a.replace("{files}", str(files)).replace("{tmp}", str(tmp_path)) for a in arguments]
    result = CliRunner().invoke(app, filled)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    message = " ".join(result.output.split())  # the error box may wrap long lines
    assert expected in message, message
    assert "Traceback" not in result.output
    assert not list(tmp_path.rglob("*.png")) and not list(tmp_path.rglob("*.jpg2"))


@pytest.mark.parametrize(
    ("prompt", "said"),
    [
        ("a red zebracorn", "unknown words read as [UNK]: zebracorn"),
        ("a red circle " * 40, "cut to 77 tokens after"),
    ],
)
def test_what_a_prompt_loses_is_said(prompt: str, said: str, tmp_path: Path) -> None:
    arguments = ["sample", "--checkpoint", T2I, "--prompt", prompt, "--steps", "1", "--n", "1"]
    with pytest.warns(PromptWarning, match=said.replace("[", r"\[").replace("]", r"\]")):
        result = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 0, result.output
