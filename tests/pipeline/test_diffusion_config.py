"""DiffusionConfig: conditioners as a list of tagged entries, configs saved with the older flat
keys read as that list, and the UNet checked against what the conditioners fill."""

from typing import Any

import pytest

from ldmkit.config import ConfigError, from_dict, to_dict
from ldmkit.pipeline import DiffusionConfig
from ldmkit.training.config import DiffusionTrainConfig
from ldmkit.training.diffusion_presets import DIFFUSION_PRESETS


def _flat(name: str, **flat: Any) -> dict[str, Any]:
    """The preset's model config as written before conditioners were a list."""
    data = to_dict(DIFFUSION_PRESETS[name].model)
    del data["conditioners"]
    defaults = {
        "num_classes": 0,
        "label_dropout": 0.1,
        "text": None,
        "clip": None,
        "caption_dropout": 0.1,
        "layout": None,
        "layout_dropout": 0.1,
        "spatial": None,
        "spatial_dropout": 0.0,
    }
    return {**data, **defaults, **flat}


@pytest.mark.parametrize(
    ("name", "flat"),
    [
        ("tiny", {"num_classes": 30}),
        ("tiny-sr", {"spatial": {"kind": "super_resolution", "factor": 4}}),
        ("tiny-semantic", {"spatial": {"kind": "semantic", "classes": 31}}),
        ("tiny-layout", {"layout": {"classes": 30, "bins": 8, "max_objects": 4, "width": 32}}),
    ],
)
def test_a_flat_config_reads_as_the_same_conditioners(name: str, flat: dict[str, Any]) -> None:
    data = _flat(name, **flat)
    if name == "tiny-layout":
        data["layout"].update(layers=1, heads=2)
    assert from_dict(DiffusionConfig, data) == DIFFUSION_PRESETS[name].model


def test_flat_dropouts_and_hybrids_keep_their_values_and_order() -> None:
    data = _flat(
        "tiny-sr",
        num_classes=3,
        label_dropout=0.3,
        spatial={"kind": "super_resolution"},
        spatial_dropout=0.2,
    )
    data["unet"]["num_classes"] = 4
    config = from_dict(DiffusionConfig, data)
    assert [(c.kind, c.dropout) for c in config.conditioners] == [("class", 0.3), ("spatial", 0.2)]
    text = _flat(
        "tiny-text",
        text=to_dict(DIFFUSION_PRESETS["tiny-text"].model.conditioners[0])["encoder"],
        caption_dropout=0.05,
    )
    assert [(c.kind, c.dropout) for c in from_dict(DiffusionConfig, text).conditioners] == [
        ("text", 0.05)
    ]
    clip = _flat("tiny-text", clip={"path": "/models/clip", "layer": "penultimate"})
    (entry,) = from_dict(DiffusionConfig, clip).conditioners
    assert entry.kind == "clip" and entry.encoder.layer == "penultimate"  # type: ignore[union-attr]


def test_flat_keys_and_the_list_together_are_refused() -> None:
    data = to_dict(DIFFUSION_PRESETS["tiny"].model)
    data["num_classes"] = 30
    with pytest.raises(ConfigError, match="give conditioners or the older keys num_classes"):
        from_dict(DiffusionConfig, data)


def test_an_older_runs_text_tokenizer_becomes_the_text_conditioners() -> None:
    data = to_dict(DIFFUSION_PRESETS["tiny-text"])
    entry = data["model"].pop("conditioners")[0]
    data["model"].update(text=entry["encoder"], caption_dropout=0.1)
    data["text_tokenizer"] = "/runs/a/tokenizer.json"
    config = from_dict(DiffusionTrainConfig, data)
    assert config.model.conditioners[0].tokenizer == "/runs/a/tokenizer.json"  # type: ignore[union-attr]
    data["text_tokenizer"] = ""
    assert from_dict(DiffusionTrainConfig, data) == DIFFUSION_PRESETS["tiny-text"]
    data["text_tokenizer"] = "x.json"
    data["model"]["text"] = None
    with pytest.raises(ConfigError, match="no text conditioner"):
        from_dict(DiffusionTrainConfig, data)


def test_two_conditioners_cannot_fill_one_unet_input() -> None:
    data = to_dict(DIFFUSION_PRESETS["tiny-sr"].model)
    data["conditioners"] = data["conditioners"] * 2
    with pytest.raises(ConfigError, match="spatial and spatial both fill the UNet's 'concat'"):
        from_dict(DiffusionConfig, data)
