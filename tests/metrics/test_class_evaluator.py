"""The adherence evaluator: heads, scoring, training, its checkpoint and the shipped one."""

import json
from pathlib import Path

import pytest
import torch

from ldmkit.assets import SHAPES_EVALUATOR
from ldmkit.checkpoint import load_evaluator
from ldmkit.data.collate import collate
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset
from ldmkit.data.fashion_mnist import DEFAULT_SOURCE
from ldmkit.metrics.class_evaluator import ClassEvaluator, EvaluatorConfig
from ldmkit.training.evaluator_trainer import evaluator_data, train_evaluator


def test_adherence_counts_kind_and_colour_separately(monkeypatch: pytest.MonkeyPatch) -> None:
    model = ClassEvaluator(EvaluatorConfig(width=8, resolution=32))
    asked = torch.tensor([0, 7, 13, 29])  # (kind, colour): (0,0) (1,1) (2,1) (4,5)
    kind = torch.nn.functional.one_hot(torch.tensor([0, 1, 3, 4]), 5).float()  # third kind wrong
    color = torch.nn.functional.one_hot(torch.tensor([0, 2, 1, 5]), 6).float()  # second wrong
    monkeypatch.setattr(ClassEvaluator, "forward", lambda self, x: (kind, color))
    scores = model.adherence(torch.zeros(4, 3, 32, 32), asked)
    assert scores == {"kind": 0.75, "color": 0.75, "both": 0.5}


def test_training_learns_colour_and_round_trips(tmp_path: Path) -> None:
    config = EvaluatorConfig(width=16, resolution=32)
    result = train_evaluator(
        tmp_path / "ev",
        steps=60,
        batch_size=32,
        train_size=256,
        heldout=64,
        config=config,
        show_progress=False,
    )
    assert result["heldout_color"] > 0.5  # colour is learnt first; chance is 1/6
    assert 0.0 <= result["heldout_both"] <= min(result["heldout_kind"], result["heldout_color"])
    loaded = load_evaluator(tmp_path / "ev")
    assert loaded.config == config
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loaded(x)[0].shape == (2, 5) and loaded.embed(x).shape == (2, 64)


def test_single_label_adherence_reports_the_class(monkeypatch: pytest.MonkeyPatch) -> None:
    model = ClassEvaluator(EvaluatorConfig(num_kinds=10, num_colors=1, width=8, resolution=32))
    asked = torch.tensor([3, 7, 9, 0])
    logits = torch.nn.functional.one_hot(torch.tensor([3, 7, 1, 0]), 10).float()
    monkeypatch.setattr(ClassEvaluator, "forward", lambda self, x: (logits, torch.zeros(4, 1)))
    assert model.adherence(torch.zeros(4, 3, 32, 32), asked) == {"class": 0.75}


@pytest.mark.skipif(
    not (DEFAULT_SOURCE / "train-images-idx3-ubyte.gz").exists(),
    reason="needs the Debian package dataset-fashion-mnist",
)
@pytest.mark.slow
def test_fashion_mnist_evaluator_learns_classes(tmp_path: Path) -> None:
    config = EvaluatorConfig(num_kinds=10, num_colors=1, width=8, resolution=32)
    result = train_evaluator(
        tmp_path / "ev",
        steps=60,
        batch_size=32,
        train_size=512,
        heldout=200,
        config=config,
        show_progress=False,
        data="fashion-mnist",
    )
    assert result["heldout_class"] > 0.3  # chance is 0.1
    assert load_evaluator(tmp_path / "ev").config == config


def test_evaluator_data_rejects_unlabelled_kinds() -> None:
    with pytest.raises(ValueError, match=r"label space for data 'emoji:x': emoji have captions"):
        evaluator_data("emoji:x", 64)


def test_shipped_shapes_evaluator_names_real_heldout_shapes() -> None:
    evaluator = load_evaluator(SHAPES_EVALUATOR)
    assert evaluator.config == EvaluatorConfig()  # 5 kinds x 6 colours at 64 px
    recorded = json.loads((SHAPES_EVALUATOR / "config.json").read_text())["training"]
    assert recorded["heldout_both"] >= 0.99 and "ldmkit train-evaluator" in recorded["command"]
    data = build_dataset(DataConfig(resolution=64, single_object=True, cache=False), "heldout")
    items = collate([data[i] for i in range(150)])
    scores = evaluator.adherence(items["image"], items["label"])
    assert scores["both"] >= 0.98
