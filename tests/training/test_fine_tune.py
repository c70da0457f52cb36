"""Fine-tuning a loaded model (the shipped text-to-image one): LoRA trains the adapters alone,
its checkpoints hold them alone, it resumes exactly, and what it writes merges back into the
model; a full fine-tune starts from the model's weights."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import ldmkit
from ldmkit.assets import SHAPES_TEXT_TO_IMAGE
from ldmkit.data.config import DataConfig
from ldmkit.interop.lora import apply_lora
from ldmkit.nn.lora import merge_lora
from ldmkit.pipeline import LatentDiffusion
from ldmkit.training.config import DiffusionTrainConfig
from ldmkit.training.diffusion_trainer import train_diffusion
from ldmkit.training.fine_tune import check_fine_tune_data, fine_tune_config
from ldmkit.training.lora import Adapters
from ldmkit.training.lora_settings import LoraSettings

pytest.importorskip("peft", reason="LoRA training needs peft")


def _config(model: LatentDiffusion, rank: int, steps: int) -> DiffusionTrainConfig:
    config = fine_tune_config(model, str(SHAPES_TEXT_TO_IMAGE), rank, text_encoder=rank > 0)
    run = replace(
        config.run, steps=steps, batch_size=4, sample_every=0, sample_count=2, sample_steps=2
    )
    run = replace(run, checkpoint_every=2, log_every=1)
    data = DataConfig(kind="shapes", resolution=64, size=48)
    return replace(config, data=data, run=run, optim=replace(config.optim, lr=1e-3))


def _train(rank: int, steps: int, out: Path) -> tuple[LatentDiffusion, Path]:
    model = ldmkit.load(SHAPES_TEXT_TO_IMAGE)
    result = train_diffusion(_config(model, rank, steps), out, show_progress=False, initial=model)
    return model, result.model_dir


def test_lora_trains_adapters_alone_and_resumes_exactly(tmp_path: Path) -> None:
    base = ldmkit.load(SHAPES_TEXT_TO_IMAGE).unet.state_dict()
    model, lora = _train(4, 4, tmp_path / "straight")
    # The base weights are untouched: peft keeps them as each adapted layer's base_layer.
    state = {k.replace(".base_layer", ""): v for k, v in model.unet.state_dict().items()}
    for key, value in base.items():
        assert torch.equal(state[key], value), key
    # The run's checkpoints hold the adapters and their EMA, nothing of the base.
    checkpoint = tmp_path / "straight" / "checkpoints" / "step-00000004"
    keys = safe_open(str(checkpoint / "train_state.safetensors"), "pt").keys()
    modules = {k.split("/")[0] for k in keys if k.startswith("module.")}
    assert modules == {"module.adapters", "module.ema"}
    trained = load_file(str(lora))
    ups = [v for k, v in trained.items() if k.endswith("lora_up.weight")]
    assert any(k.startswith("text_encoder.") for k in trained)  # --lora-text-encoder
    assert all(u.abs().max() > 0 for u in ups)  # every adapter moved off its zero start
    # Two steps, then two more on resume: the same adapters bit for bit.
    _train(4, 2, tmp_path / "halves")
    _, resumed = _train(4, 4, tmp_path / "halves")
    again = load_file(str(resumed))
    assert trained.keys() == again.keys()
    for key, value in trained.items():
        assert torch.equal(value, again[key]), key


def test_merged_pairs_compute_what_the_peft_adapters_compute() -> None:
    adapted = ldmkit.load(SHAPES_TEXT_TO_IMAGE)
    adapters = Adapters(adapted, LoraSettings(rank=4, alpha=2.0, text_encoder=True))
    with torch.no_grad():
        for p in adapters.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
    merged = ldmkit.load(SHAPES_TEXT_TO_IMAGE)
    pairs = adapters.pairs()
    assert {name.split(".")[0] for name in pairs} == {"unet", "text_encoder"}
    for part, module in (("unet", merged.unet), ("text_encoder", merged.text_encoder)):
        merge_lora(module, {k.split(".", 1)[1]: v for k, v in pairs.items() if k.startswith(part)})
    prompts = {"prompts": ["a red circle", "a blue square"]}
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([100, 800])
    with torch.no_grad():
        ours, _ = merged.conditions(2, prompts, 1.0)
        theirs, _ = adapted.conditions(2, prompts, 1.0)
        torch.testing.assert_close(ours["context"], theirs["context"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            merged.conditional_unet(x, t, ours),
            adapted.conditional_unet(x, t, theirs),
            atol=1e-5,
            rtol=1e-5,
        )


def test_the_written_lora_merges_and_scale_zero_changes_nothing(tmp_path: Path) -> None:
    _, lora = _train(4, 2, tmp_path / "run")
    plain = ldmkit.load(SHAPES_TEXT_TO_IMAGE)
    before = {k: v.clone() for k, v in plain.unet.state_dict().items()}
    applied = apply_lora(plain, lora, 0.0)
    assert applied.format == "ldmkit" and applied.layers > 0
    assert all(torch.equal(v, plain.unet.state_dict()[k]) for k, v in before.items())
    apply_lora(plain, lora, 1.0)
    assert any(not torch.equal(v, plain.unet.state_dict()[k]) for k, v in before.items())


def test_lora_settings_are_checked() -> None:
    with pytest.raises(ValueError, match=r"lora\.rank"):
        LoraSettings(rank=-1)
    with pytest.raises(ValueError, match=r"lora\.text_encoder needs"):
        LoraSettings(text_encoder=True)


def test_a_full_fine_tune_starts_from_the_model(tmp_path: Path) -> None:
    base = ldmkit.load(SHAPES_TEXT_TO_IMAGE)
    _, model_dir = _train(0, 2, tmp_path / "full")
    tuned = ldmkit.load(model_dir)
    assert tuned.config == base.config
    changes = [
        (tuned.unet.state_dict()[k] - v).abs().max().item()
        for k, v in base.unet.state_dict().items()
    ]
    assert max(changes) > 0  # trained
    assert max(changes) < 0.05  # from the base weights, not from a fresh start
    recorded = ldmkit.checkpoint.read_config(model_dir, "latent-diffusion")["training"]
    assert recorded["fine_tuned_from"] == str(SHAPES_TEXT_TO_IMAGE)


def test_a_class_model_takes_a_folder_of_its_classes_only(make_ldm, tmp_path: Path) -> None:
    from PIL import Image

    model = make_ldm(num_classes=3)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / name / "0.png")
    folder = DataConfig(kind="folder", path=str(tmp_path), resolution=16)
    with pytest.raises(ValueError, match="draws 3 classes; the folder data has 2 class sub"):
        check_fine_tune_data(model, [], folder)
    (tmp_path / "c").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "c" / "0.png")
    assert check_fine_tune_data(model, [], folder) == []


def _lora_worker(rank: int, out: str) -> None:
    import os

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    _train(4, 2, Path(out))


@pytest.mark.slow
def test_two_process_lora_equals_one_process(tmp_path: Path, run_two_ranks) -> None:
    run_two_ranks(_lora_worker, str(tmp_path / "ddp"))
    _, single = _train(4, 2, tmp_path / "one")
    a, b = load_file(str(tmp_path / "ddp" / "lora.safetensors")), load_file(str(single))
    assert a.keys() == b.keys() and any(k.startswith("text_encoder.") for k in a)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=0)


def test_captions_the_tokenizer_does_not_read_are_counted() -> None:
    model = ldmkit.load(SHAPES_TEXT_TO_IMAGE)
    data = [{"caption": "a red circle"}, {"caption": "a zorgly teal dodecahedron"}]
    notes = check_fine_tune_data(model, data, DataConfig(kind="shapes"))
    assert len(notes) == 1 and "1 of 2 distinct training captions" in notes[0]
    assert "zorgly" in notes[0]
    assert check_fine_tune_data(model, [{"caption": "a red circle"}], DataConfig()) == []
    with pytest.raises(ValueError, match="no captions"):
        check_fine_tune_data(model, [{"caption": ""}], DataConfig())
