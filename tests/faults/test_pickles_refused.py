"""A pickle that runs code when unpickled, placed where ldmkit reads a .ckpt / .pt / .pth / .bin
(a Stable Diffusion file, a CompVis zoo file beside its config.yaml, a diffusers folder's
component weights under diffusers' and transformers' names): refused with a message, and
nothing runs."""

import json
import os
import pickle
from pathlib import Path

import pytest

import ldmkit
from ldmkit.checkpoint import CheckpointError
from ldmkit.interop.diffusers_folder import _weights

REFUSED = r"holds more than tensors .* refused"


def _evil(marker: Path) -> bytes:
    class Payload:
        def __reduce__(self):  # what a malicious checkpoint does when unpickled
            return (os.system, (f"touch {marker}",))

    return pickle.dumps({"state_dict": {"model.diffusion_model.x": Payload()}})


@pytest.mark.parametrize("where", ["model.ckpt", "model.pt", "model.pth", "zoo/model.ckpt"])
def test_a_checkpoint_file_with_code_is_refused(tmp_path: Path, where: str) -> None:
    marker = tmp_path / "executed"
    path = tmp_path / where
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(_evil(marker))
    if where.startswith("zoo/"):  # a zoo zip's layout: the config beside the weights
        (path.parent / "config.yaml").write_text("model: {params: {}}\n")
    with pytest.raises(CheckpointError, match=REFUSED):
        ldmkit.load(path)
    assert not marker.exists()


def test_a_diffusers_folders_weights_with_code_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    folder = tmp_path / "pipe"
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        (folder / part).mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    unet = {"block_out_channels": [32], "down_block_types": ["DownBlock2D"],
            "up_block_types": ["UpBlock2D"], "cross_attention_dim": 32}  # fmt: skip
    (folder / "unet" / "config.json").write_text(json.dumps(unet))
    (folder / "vae" / "config.json").write_text(json.dumps({"block_out_channels": [16]}))
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"beta_schedule": "scaled_linear"})
    )
    (folder / "vae" / "diffusion_pytorch_model.bin").write_bytes(_evil(marker))
    with pytest.raises(CheckpointError, match=REFUSED):
        ldmkit.load(folder)
    # Every component is read by the same reader: diffusers' and transformers' file names.
    for name in ("diffusion_pytorch_model.bin", "pytorch_model.bin"):
        component = tmp_path / name.split(".")[0]
        component.mkdir()
        (component / name).write_bytes(_evil(marker))
        with pytest.raises(CheckpointError, match=REFUSED):
            _weights(component)
    assert not marker.exists()
