"""Strict config loading: unknown keys, wrong types, overrides, presets round trip."""

import re
from pathlib import Path

import pytest

from ldmkit.config import ConfigError, apply_overrides, from_dict, load_yaml, save_yaml, to_dict
from ldmkit.training.config import AutoencoderTrainConfig, DiffusionTrainConfig
from ldmkit.training.diffusion_presets import DIFFUSION_PRESETS
from ldmkit.training.presets import PRESETS


def test_unknown_key_names_key_and_valid_keys() -> None:
    with pytest.raises(ConfigError, match=r"model\.chanels.*valid keys here: .*channel_mult"):
        from_dict(AutoencoderTrainConfig, {"model": {"chanels": 3}})


def test_wrong_types_and_literals_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"run\.steps: expected int"):
        from_dict(AutoencoderTrainConfig, {"run": {"steps": "many"}})
    with pytest.raises(ConfigError, match=r"run\.steps: expected int"):
        from_dict(AutoencoderTrainConfig, {"run": {"steps": True}})
    with pytest.raises(ConfigError, match=r"model\.kind: 'gan' is not one of 'kl', 'vq'"):
        from_dict(AutoencoderTrainConfig, {"model": {"kind": "gan"}})
    with pytest.raises(ConfigError, match=r"optim\.betas: expected 2 values"):
        from_dict(AutoencoderTrainConfig, {"optim": {"betas": [0.9]}})
    with pytest.raises(ConfigError, match=r"run\.precision: 'bf17' is not one of .*'auto'"):
        from_dict(DiffusionTrainConfig, {"run": {"precision": "bf17"}})
    assert from_dict(DiffusionTrainConfig, {"run": {"precision": "auto"}}).run.precision == "auto"


def test_component_validation_surfaces_as_config_error() -> None:
    with pytest.raises(ConfigError, match="channel_mult"):
        from_dict(AutoencoderTrainConfig, {"model": {"channel_mult": [1] * 7}})


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip(name: str, tmp_path: Path) -> None:
    preset = PRESETS[name]
    assert from_dict(AutoencoderTrainConfig, to_dict(preset)) == preset
    save_yaml(preset, tmp_path / "c.yaml")
    assert from_dict(AutoencoderTrainConfig, load_yaml(tmp_path / "c.yaml")) == preset


def test_overrides_parse_values_and_reject_unknown_keys() -> None:
    data = to_dict(PRESETS["tiny"])
    out = apply_overrides(data, ["optim.lr=1e-3", "model.channel_mult=[1, 2, 4]", "model.kind=vq"])
    config = from_dict(AutoencoderTrainConfig, out)
    assert config.optim.lr == 1e-3 and config.model.channel_mult == (1, 2, 4)
    assert config.model.kind == "vq"
    assert data["model"]["kind"] == "kl"  # the input is not modified
    with pytest.raises(ConfigError, match=r"unknown key 'lrate'.*valid keys here"):
        apply_overrides(data, ["optim.lrate=1"])
    with pytest.raises(ConfigError, match="not a config section"):
        apply_overrides(data, ["optim.lr.x=1"])
    with pytest.raises(ConfigError, match=r"key\.path=value"):
        apply_overrides(data, ["optim.lr"])


def test_missing_yaml_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name", sorted(DIFFUSION_PRESETS))
def test_diffusion_presets_round_trip(name: str) -> None:
    preset = DIFFUSION_PRESETS[name]
    assert from_dict(DiffusionTrainConfig, to_dict(preset)) == preset


def test_a_tagged_union_reads_each_entry_by_its_kind() -> None:
    data = to_dict(DIFFUSION_PRESETS["tiny-sr"])
    data["model"]["conditioners"] = [
        {"kind": "class", "num_classes": 30, "dropout": 0.2},
        {"kind": "spatial", "map": {"kind": "super_resolution"}},
    ]
    data["model"]["unet"]["num_classes"] = 31
    config = from_dict(DiffusionTrainConfig, data)
    assert [type(c).__name__ for c in config.model.conditioners] == [
        "ClassCondition",
        "SpatialCondition",
    ]
    assert config.model.conditioners[0].dropout == 0.2
    data["model"]["conditioners"] = [{"kind": "t5"}]
    with pytest.raises(ConfigError, match=r"model\.conditioners\[0\]: kind 't5' is not one of"):
        from_dict(DiffusionTrainConfig, data)
    data["model"]["conditioners"] = [{"kind": "class", "num_classes": 30, "size": 1}]
    with pytest.raises(ConfigError, match=r"unknown config key 'model\.conditioners\[0\]\.size'"):
        from_dict(DiffusionTrainConfig, data)


def test_overrides_index_into_lists() -> None:
    data = to_dict(DIFFUSION_PRESETS["shapes-text"])
    out = apply_overrides(data, ["model.conditioners.0.dropout=0.25"])
    assert from_dict(DiffusionTrainConfig, out).model.conditioners[0].dropout == 0.25
    assert data["model"]["conditioners"][0]["dropout"] == 0.1  # the input is not modified
    with pytest.raises(ConfigError, match=r"'1' is not an index of this list of 1 \(0\.\.0\)"):
        apply_overrides(data, ["model.conditioners.1.dropout=0.2"])
    with pytest.raises(ConfigError, match=r"unknown key 'dropuot'"):
        apply_overrides(data, ["model.conditioners.0.dropuot=0.2"])


def test_an_autoencoder_config_with_the_older_width_names_reads_as_the_new() -> None:
    data = to_dict(PRESETS["kl-f4"].model)
    old = {
        ("ch" if k == "model_channels" else "ch_mult" if k == "channel_mult" else k): v
        for k, v in data.items()
    }
    assert list(old)[:5] == ["kind", "in_channels", "out_channels", "ch", "ch_mult"]
    assert from_dict(type(PRESETS["kl-f4"].model), old) == PRESETS["kl-f4"].model
    with pytest.raises(ConfigError, match="give model_channels or the older ch, not both"):
        from_dict(type(PRESETS["kl-f4"].model), {**old, "model_channels": 8})


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=-1", "optim: lr must be a finite number > 0; got -1.0"),
        ("optim.lr=.nan", "optim: lr must be a finite number > 0; got nan"),
        ("optim.betas=[1.5, 0.9]", "optim: betas must each be in [0, 1)"),
        ("optim.min_lr_ratio=2", "optim: min_lr_ratio must be in [0, 1]"),
        ("optim.warmup_steps=-3", "optim: warmup_steps must be >= 0"),
        ("data.resolution=0", "data: data.resolution must be >= 1"),
        ("model.latent_size=0", "model: latent_size must be >= 1"),
        ("run.steps=-5", "run: steps must be >= 1; got -5"),
        ("run.batch_size=0", "run: batch_size must be >= 1; got 0"),
        ("run.grad_accumulation=0", "run: grad_accumulation must be >= 1"),
        ("run.max_minutes=-1", "run: max_minutes must be a finite number >= 0"),
        ("run.sample_sampler=foo", "run: sample_sampler must be one of ddpm, ddim"),
        ("run.ema_decay=1", "run: ema_decay must be in [0, 1)"),
    ],
)
def test_config_values_out_of_range_name_their_key(override: str, message: str) -> None:
    data = apply_overrides(to_dict(DIFFUSION_PRESETS["shapes-text"]), [override])
    with pytest.raises(ConfigError, match=re.escape(message)):
        from_dict(DiffusionTrainConfig, data)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("loss.kl_weight=-1", "loss: kl_weight must be a finite number >= 0"),
        ("loss.disc_start=-1", "loss: disc_start must be >= 0"),
        ("model.dropout=2", "model: dropout must be in [0, 1)"),
        ("run.heldout_images=0", "run: heldout_images must be >= 1"),
    ],
)
def test_autoencoder_config_values_out_of_range_name_their_key(override: str, message: str) -> None:
    data = apply_overrides(to_dict(PRESETS["tiny"]), [override])
    with pytest.raises(ConfigError, match=re.escape(message)):
        from_dict(AutoencoderTrainConfig, data)
