"""The autoencoder training loop: outputs, exact resume, the non-finite-loss guard."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ldmkit.autoencoder import AutoencoderLoss
from ldmkit.checkpoint import load_autoencoder
from ldmkit.precision import resolve_precision
from ldmkit.training.autoencoder_trainer import train_autoencoder
from ldmkit.training.checkpoints import latest_checkpoint
from ldmkit.training.loop import TrainingDiverged
from ldmkit.training.presets import PRESETS


def tiny(kind: str = "kl", steps: int = 8, **run) -> "object":
    preset = PRESETS["tiny"]
    return dataclasses.replace(
        preset,
        model=dataclasses.replace(preset.model, kind=kind),
        data=dataclasses.replace(preset.data, size=64),
        run=dataclasses.replace(
            preset.run,
            steps=steps,
            image_every=4,
            checkpoint_every=4,
            log_every=2,
            heldout_images=4,
            latent_stat_batches=2,
            **run,
        ),
    )


@pytest.mark.parametrize("kind", ["kl", "vq"])
def test_run_writes_model_pictures_and_checkpoints(kind: str, tmp_path: Path) -> None:
    extra = {"dead_code_restart_every": 3} if kind == "vq" else {}
    config = tiny(kind, precision="auto", **extra)
    result = train_autoencoder(config, tmp_path, show_progress=False)
    assert result.step == 8
    recorded = json.loads((result.model_dir / "config.json").read_text())["training"]
    assert recorded["precision"] == resolve_precision("auto", torch.device("cpu"))  # as run
    for name in ("reconstructions.png", "loss.png", "history.json", "config.yaml"):
        assert (tmp_path / name).is_file()
    assert latest_checkpoint(tmp_path).name == "step-00000008"
    model = load_autoencoder(result.model_dir)
    assert float(model.latent_scale) != 1.0  # measured from data, not a constant
    history = json.loads((tmp_path / "history.json").read_text())
    assert any("val_psnr" in row for row in history)
    if kind == "vq":
        assert any("restarted_codes" in row or "perplexity" in row for row in history)


@pytest.mark.parametrize("kind", ["kl", "vq"])
def test_fast_preset_settings_train_save_and_load(kind: str, tmp_path: Path) -> None:
    # The *-fast presets' network (space-to-depth stem, no GroupNorm) with clipped gradients.
    fast = PRESETS[f"{kind}-f4-fast"]
    config = tiny(kind)
    model = dataclasses.replace(
        config.model, patch=fast.model.patch, norm_groups=fast.model.norm_groups, channel_mult=(1,)
    )
    optim = dataclasses.replace(config.optim, grad_clip=1.0)
    result = train_autoencoder(
        dataclasses.replace(config, model=model, optim=optim), tmp_path, show_progress=False
    )
    assert result.step == 8
    loaded = load_autoencoder(result.model_dir)
    assert loaded.config.norm_groups == 0 and loaded.factor == 2
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in loaded.modules())
    x = torch.zeros(2, 3, 32, 32)
    assert torch.isfinite(loaded.decode(loaded.encode(x).mode())).all()


def test_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    straight = train_autoencoder(tiny(steps=8), tmp_path / "a", show_progress=False)
    train_autoencoder(tiny(steps=4), tmp_path / "b", show_progress=False)
    resumed = train_autoencoder(tiny(steps=8), tmp_path / "b", show_progress=False)
    assert resumed.step == straight.step == 8
    a = load_file(str(straight.model_dir / "model.safetensors"))
    b = load_file(str(resumed.model_dir / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    state_a = load_file(str(latest_checkpoint(tmp_path / "a") / "train_state.safetensors"))
    state_b = load_file(str(latest_checkpoint(tmp_path / "b") / "train_state.safetensors"))
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


def test_non_finite_losses_are_skipped_then_stop_the_run(tmp_path: Path, monkeypatch) -> None:
    original = AutoencoderLoss.generator_loss
    poisoned: set[int] = {5}

    def generator_loss(self, x, out, step, last_layer):
        loss, logs = original(self, x, out, step, last_layer)
        if step in poisoned:
            logs["loss"] = float("nan")
            return loss * float("nan"), logs
        return loss, logs

    monkeypatch.setattr(AutoencoderLoss, "generator_loss", generator_loss)
    result = train_autoencoder(tiny(steps=8), tmp_path / "a", show_progress=False)
    assert result.step == 8
    assert max(row.get("skipped_steps", 0) for row in result.history) == 1
    assert all(torch.isfinite(p).all() for p in load_autoencoder(result.model_dir).parameters())

    poisoned.update(range(4, 100))
    with pytest.raises(TrainingDiverged, match="last good checkpoint is intact"):
        train_autoencoder(tiny(steps=20, max_bad_steps=3), tmp_path / "b", show_progress=False)
    assert latest_checkpoint(tmp_path / "b").name == "step-00000004"


def test_resume_refuses_a_different_model(tmp_path: Path) -> None:
    train_autoencoder(tiny(steps=4), tmp_path, show_progress=False)
    other = tiny(steps=8)
    other = dataclasses.replace(other, model=dataclasses.replace(other.model, z_channels=4))
    with pytest.raises(ValueError, match=r"different model config.*--no-resume"):
        train_autoencoder(other, tmp_path, show_progress=False)
    restarted = train_autoencoder(other, tmp_path, resume=False, show_progress=False)
    assert restarted.step == 8
