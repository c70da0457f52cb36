"""One resume-compatibility check for every trainer: sections read back through their dataclasses,
so an old run resumes after a field was added, and a changed section is named."""

import dataclasses
import json
from pathlib import Path

import pytest

from ldmkit.config import to_dict
from ldmkit.training.checkpoints import check_resumable
from ldmkit.training.config import AutoencoderTrainConfig, DiffusionTrainConfig, OptimConfig


def _saved(tmp_path: Path, config: object) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(to_dict(config)))
    return tmp_path


@pytest.mark.parametrize("config", [AutoencoderTrainConfig(), DiffusionTrainConfig()])
def test_same_config_resumes_and_a_field_added_since_takes_its_default(
    tmp_path: Path, config: object
) -> None:
    checkpoint = _saved(tmp_path, config)
    check_resumable(checkpoint, config, ("model", "data", "optim"))
    saved = json.loads((checkpoint / "config.json").read_text())
    del saved["optim"]["min_lr_ratio"]  # as written before that field existed
    del saved["data"]["cache"]
    (checkpoint / "config.json").write_text(json.dumps(saved))
    check_resumable(checkpoint, config, ("model", "data", "optim"))  # no error


def test_changed_or_unreadable_sections_are_named(tmp_path: Path) -> None:
    checkpoint = _saved(tmp_path, AutoencoderTrainConfig())
    changed = AutoencoderTrainConfig(optim=OptimConfig(lr=5e-4))
    with pytest.raises(ValueError, match=r"different optim config; pass --no-resume"):
        check_resumable(checkpoint, changed, ("model", "loss", "data", "optim"))
    saved = json.loads((checkpoint / "config.json").read_text())
    saved["model"]["no_such_field"] = 1
    (checkpoint / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"different model, optim config"):
        check_resumable(checkpoint, changed, ("model", "loss", "data", "optim"))


def test_a_run_saved_with_the_flat_conditioning_keys_resumes(tmp_path: Path) -> None:
    from ldmkit.training.diffusion_presets import DIFFUSION_PRESETS

    config = DIFFUSION_PRESETS["tiny-text"]
    text = config.model.conditioners[0]
    pinned = dataclasses.replace(
        config,
        model=dataclasses.replace(
            config.model, conditioners=(dataclasses.replace(text, tokenizer="/tok.json"),)
        ),
    )
    saved = to_dict(config)
    entry = saved["model"].pop("conditioners")[0]
    saved["model"].update(text=entry["encoder"], caption_dropout=0.1, num_classes=0)
    saved["text_tokenizer"] = "/tok.json"  # as an older run recorded a pinned tokenizer
    (tmp_path / "config.json").write_text(json.dumps(saved))
    check_resumable(tmp_path, pinned, ("model", "data"))  # no error
    with pytest.raises(ValueError, match="different model config"):
        check_resumable(tmp_path, config, ("model", "data"))


def test_a_run_saved_before_fine_tuning_resumes_and_another_base_is_refused(
    tmp_path: Path,
) -> None:
    from ldmkit.training.lora_settings import LoraSettings

    sections = ("model", "data", "lora", "init")
    checkpoint = _saved(tmp_path, DiffusionTrainConfig())
    saved = json.loads((checkpoint / "config.json").read_text())
    del saved["lora"], saved["init"]  # as written before fine-tuning existed
    (checkpoint / "config.json").write_text(json.dumps(saved))
    check_resumable(checkpoint, DiffusionTrainConfig(), sections)  # no error
    tuned = DiffusionTrainConfig(init="base.safetensors", lora=LoraSettings(rank=4))
    checkpoint = _saved(tmp_path, tuned)
    check_resumable(checkpoint, tuned, sections)
    with pytest.raises(ValueError, match=r"different init config"):
        check_resumable(checkpoint, dataclasses.replace(tuned, init="other.ckpt"), sections)
    with pytest.raises(ValueError, match=r"different lora config"):
        check_resumable(checkpoint, dataclasses.replace(tuned, lora=LoraSettings(rank=8)), sections)


def test_where_the_data_is_read_from_may_change_what_is_read_may_not(tmp_path: Path) -> None:
    from ldmkit.data.config import DataConfig

    data = DataConfig(kind="shards", path="set", stream=True)
    checkpoint = _saved(tmp_path, AutoencoderTrainConfig(data=data))
    moved = dataclasses.replace(data, shard_url="pipe:aws s3 cp s3://b/{shard} -", cache=False)
    check_resumable(checkpoint, AutoencoderTrainConfig(data=moved), ("data",))  # no error
    for other in (dict(stream=False), dict(shuffle_buffer=10), dict(path="another")):
        changed = AutoencoderTrainConfig(data=dataclasses.replace(data, **other))  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"different data config"):
            check_resumable(checkpoint, changed, ("data",))
