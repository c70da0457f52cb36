"""LoRA files in other tools' names: diffusers loads the diffusers and kohya files ldmkit writes
and computes what ldmkit computes with them merged; the older diffusers names read the same;
a LoRA that does not fit is refused by name and changes nothing."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import ldmkit
from ldmkit.cli import app
from ldmkit.interop.diffusers_unet import unet_key_from_diffusers, unet_key_to_diffusers
from ldmkit.interop.export_diffusers import export_diffusers
from ldmkit.interop.lora import apply_lora, parse_lora_spec, read_lora, write_lora
from ldmkit.nn.lora import LoraError, LoraPair
from ldmkit.pipeline import LatentDiffusion
from ldmkit.unet import UNET_PRESETS, UNet

diffusers = pytest.importorskip("diffusers", reason="the parity checks need diffusers")
pytest.importorskip("peft", reason="LoRA training and diffusers' LoRA loading need peft")

from sd_layout import make_parts, sd1_state  # noqa: E402

from ldmkit.training.lora import Adapters  # noqa: E402
from ldmkit.training.lora_settings import LoraSettings  # noqa: E402

runner = CliRunner()


@pytest.mark.parametrize("name", ["sd-v1", "sd-v2", "small"])
def test_unet_names_go_to_diffusers_and_back(name: str) -> None:
    config = UNET_PRESETS[name]
    for key in UNet(config).state_dict():
        assert unet_key_from_diffusers(unet_key_to_diffusers(key, config), config) == key


@pytest.fixture(scope="module")
def sd_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sd") / "tiny-sd1.safetensors"
    save_file(sd1_state(make_parts()), str(path))
    return path


def random_pairs(sd_file: Path, targets: str) -> dict[str, LoraPair]:
    """Random rank-4 adapters (alpha 2: a scale of 1/2) on the UNet's `targets` and CLIP."""
    model = ldmkit.load(sd_file)
    settings = LoraSettings(rank=4, alpha=2.0, text_encoder=True, targets=targets)  # type: ignore[arg-type]
    adapters = Adapters(model, settings)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in adapters.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return adapters.pairs()


@pytest.fixture(scope="module")
def pairs(sd_file: Path) -> dict[str, LoraPair]:
    """Adapters on the attention projections (the default targets)."""
    return random_pairs(sd_file, "attention")


@pytest.mark.parametrize("fmt", ["diffusers", "kohya"])
@pytest.mark.parametrize("targets", ["attention", "all"])
@torch.no_grad()
def test_diffusers_runs_the_lora_as_ldmkit_merges_it(
    sd_file: Path, targets: str, fmt: str, tmp_path: Path
) -> None:
    # "all": the ResBlocks' and resamplers' 3x3 convolutions too (conv LoRA, LoCon).
    pairs = random_pairs(sd_file, targets)
    base = ldmkit.load(sd_file)
    pipe_dir = export_diffusers(base, tmp_path / "pipe")
    written = write_lora(base, pairs, tmp_path / f"{fmt}.safetensors", fmt)
    assert read_lora(written)[1] == fmt
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(pipe_dir, local_files_only=True)
    pipe.load_lora_weights(str(tmp_path), weight_name=written.name)
    pipe.fuse_lora()  # both parts, at scale 1

    merged = ldmkit.load(sd_file)
    applied = apply_lora(merged, written, 1.0)
    assert applied.layers == len(pairs) and applied.format == fmt
    prompts = ["a cat", ""]
    cond, _ = merged.conditions(2, {"prompts": prompts}, 1.0)
    ids = pipe.tokenizer(prompts, padding="max_length", max_length=77, return_tensors="pt")
    torch.testing.assert_close(
        pipe.text_encoder(ids.input_ids)[0], cond["context"], rtol=1e-4, atol=1e-4
    )
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([10, 700])
    theirs = pipe.unet(x, t, encoder_hidden_states=cond["context"]).sample
    ours = merged.conditional_unet(x, t, cond)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-5)
    # The adapters matter: without them the outputs differ by far more than the tolerance.
    plain = ldmkit.load(sd_file)
    plain_cond, _ = plain.conditions(2, {"prompts": prompts}, 1.0)
    assert (plain_cond["context"] - cond["context"]).abs().max() > 0.1
    assert (plain.conditional_unet(x, t, cond) - ours).abs().max() > 1e-3


def test_the_older_diffusers_names_read_as_the_new(
    sd_file: Path, pairs: dict, tmp_path: Path
) -> None:
    model = ldmkit.load(sd_file)
    new = load_file(str(write_lora(model, pairs, tmp_path / "new.safetensors", "diffusers")))
    old = {}
    for key, value in new.items():
        layer, kind = key.rsplit(".lora_", 1)
        side = "down" if kind.startswith("A") else "up"
        if key.startswith("unet."):
            parent, proj = layer.rsplit(".to_", 1)
            proj = proj.removesuffix(".0")
            old[f"{parent}.processor.to_{proj}_lora.{side}.weight"] = value
        else:
            old[f"{layer}.lora_linear_layer.{side}.weight"] = value
    save_file(old, str(tmp_path / "old.safetensors"))
    a, b = ldmkit.load(sd_file), ldmkit.load(sd_file)
    apply_lora(a, tmp_path / "new.safetensors")
    apply_lora(b, tmp_path / "old.safetensors")
    for key, value in a.unet.state_dict().items():
        assert torch.equal(value, b.unet.state_dict()[key]), key
    for key, value in a.text_encoder.state_dict().items():
        assert torch.equal(value, b.text_encoder.state_dict()[key]), key


def _unchanged(model: LatentDiffusion, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, model.unet.state_dict()[k]) for k, v in before.items())


def test_a_lora_that_does_not_fit_is_refused_and_changes_nothing(
    sd_file: Path, pairs: dict, tmp_path: Path
) -> None:
    model = ldmkit.load(sd_file)
    before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    kohya = load_file(str(write_lora(model, pairs, tmp_path / "k.safetensors", "kohya")))
    # A layer this model lacks (an SDXL-style second text encoder).
    te2 = "lora_te2_text_model_encoder_layers_0_self_attn_q_proj"
    extra = {**kohya, f"{te2}.lora_down.weight": torch.zeros(4, 64)}
    extra[f"{te2}.lora_up.weight"] = torch.zeros(64, 4)
    save_file(extra, str(tmp_path / "other.safetensors"))
    with pytest.raises(LoraError, match=r"1 of \d+ adapted layers are not in this model: lora_te2"):
        apply_lora(model, tmp_path / "other.safetensors")
    # The right names with the wrong widths, in the text encoder: refused before any weight
    # changes, the UNet's included.
    key = next(k for k in kohya if k.endswith("lora_up.weight") and k.startswith("lora_te_"))
    wrong = {**kohya, key: torch.zeros(kohya[key].shape[0] * 2, 4)}
    save_file(wrong, str(tmp_path / "wide.safetensors"))
    with pytest.raises(LoraError, match="another model"):
        apply_lora(model, tmp_path / "wide.safetensors")
    save_file({"weight": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(LoraError, match="not a LoRA"):
        apply_lora(model, tmp_path / "plain.safetensors")
    assert _unchanged(model, before)


def test_lora_specs_take_a_scale() -> None:
    assert parse_lora_spec("style.safetensors:0.5") == (Path("style.safetensors"), 0.5)
    assert parse_lora_spec("style.safetensors") == (Path("style.safetensors"), 1.0)
    with pytest.raises(LoraError, match="FILE:SCALE"):
        parse_lora_spec("style.safetensors:strong")


def test_sample_merges_loras_records_them_and_reruns_them(
    sd_file: Path, pairs: dict, tmp_path: Path
) -> None:
    model = ldmkit.load(sd_file)
    lora = write_lora(model, pairs, tmp_path / "style.safetensors", "kohya")
    common = ["sample", "--checkpoint", str(sd_file), "--prompt", "a cat", "--n", "1"]
    common += ["--steps", "2", "--latent-size", "8"]
    out = tmp_path / "a.png"
    result = runner.invoke(app, [*common, "--lora", f"{lora}:0.5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    recorded = json.loads(result.output.strip().splitlines()[-1])
    assert recorded["loras"][0]["scale"] == 0.5 and recorded["loras"][0]["name"] == "style"
    plain = runner.invoke(app, [*common, "--out", str(tmp_path / "plain.png")])
    assert plain.exit_code == 0, plain.output
    assert (tmp_path / "plain.png").read_bytes() != out.read_bytes()
    again = runner.invoke(app, ["sample", "--from", str(out), "--out", str(tmp_path / "b.png")])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "b.png").read_bytes() == out.read_bytes()
    missing = runner.invoke(app, [*common, "--lora", "nowhere.safetensors:1"])
    assert missing.exit_code == 2 and "--lora" in missing.output and "nowhere" in missing.output
