"""Checkpoint format: round trip, atomic replacement, clear errors for wrong inputs."""

import json
from pathlib import Path

import pytest
import torch

from ldmkit.autoencoder import Autoencoder, AutoencoderConfig
from ldmkit.checkpoint import (
    CheckpointError,
    load_autoencoder,
    save_autoencoder,
    write_directory_atomically,
)


def _model() -> Autoencoder:
    torch.manual_seed(0)
    model = Autoencoder(
        AutoencoderConfig(model_channels=8, channel_mult=(1, 2), num_res_blocks=1, norm_groups=4)
    )
    model.set_latent_statistics(0.25, 1.5)
    return model.eval()


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = _model()
    save_autoencoder(model, tmp_path / "ae")
    assert sorted(p.name for p in (tmp_path / "ae").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    loaded = load_autoencoder(tmp_path / "ae")
    assert loaded.config == model.config
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded.to_latent(x), model.to_latent(x))
    meta = json.loads((tmp_path / "ae" / "config.json").read_text())
    assert meta["latent"] == {"shift": 0.25, "scale": 1.5}


def test_failed_write_keeps_existing_checkpoint(tmp_path: Path) -> None:
    model = _model()
    save_autoencoder(model, tmp_path / "ae")
    before = (tmp_path / "ae" / "model.safetensors").read_bytes()

    def broken(tmp: Path) -> None:
        (tmp / "model.safetensors").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(
        CheckpointError,
        match=r"could not write .*ae: No space left on device; "
        "anything saved there before is intact",
    ):
        write_directory_atomically(tmp_path / "ae", broken)
    assert (tmp_path / "ae" / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ae"]  # no temporary left behind
    load_autoencoder(tmp_path / "ae")


def test_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"config\.json is missing"):
        load_autoencoder(tmp_path)
    save_autoencoder(_model(), tmp_path / "ae")
    meta = json.loads((tmp_path / "ae" / "config.json").read_text())
    (tmp_path / "ae" / "config.json").write_text(json.dumps(meta | {"model": "ldm"}))
    with pytest.raises(CheckpointError, match="holds a 'ldm' checkpoint"):
        load_autoencoder(tmp_path / "ae")
    (tmp_path / "ae" / "config.json").write_text(json.dumps(meta))
    (tmp_path / "ae" / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_autoencoder(tmp_path / "ae")
    save_autoencoder(_model(), tmp_path / "ae")
    meta["config"]["model_channels"] = 16  # weights no longer fit the config
    (tmp_path / "ae" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not match the config"):
        load_autoencoder(tmp_path / "ae")


def test_training_data_record_of_a_latent_diffusion_checkpoint(tmp_path: Path) -> None:
    from ldmkit.checkpoint import save_latent_diffusion, training_data
    from ldmkit.pipeline import DiffusionConfig, LatentDiffusion
    from ldmkit.unet import unet_preset

    unet = unet_preset("tiny", in_channels=3, out_channels=3, context_dim=None)
    model = LatentDiffusion(DiffusionConfig(unet=unet, latent_size=8), _model())
    data = {"kind": "shapes", "resolution": 32, "single_object": True, "cache": True}
    save_latent_diffusion(model, tmp_path / "a", extra={"training": {"data": data}})
    recorded = training_data(tmp_path / "a")
    assert (recorded.kind, recorded.resolution, recorded.single_object) == ("shapes", 32, True)
    assert recorded.cache is False  # evaluation reads held-out data straight
    save_latent_diffusion(model, tmp_path / "b")
    with pytest.raises(CheckpointError, match="does not record its training data"):
        training_data(tmp_path / "b")
    bad = {"training": {"data": {"kind": "shapes", "resolutoin": 32}}}
    save_latent_diffusion(model, tmp_path / "c", extra=bad)
    with pytest.raises(CheckpointError, match="bad training data record"):
        training_data(tmp_path / "c")
