"""The shapes evaluator: heads, adherence scoring, training and its checkpoint."""

from pathlib import Path

import pytest
import torch

from ldmkit.checkpoint import load_classifier
from ldmkit.metrics.shape_classifier import ClassifierConfig, ShapeClassifier
from ldmkit.training.classifier_trainer import train_shape_classifier


def test_adherence_counts_kind_and_colour_separately(monkeypatch: pytest.MonkeyPatch) -> None:
    model = ShapeClassifier(ClassifierConfig(width=8, resolution=32))
    asked = torch.tensor([0, 7, 13, 29])  # (kind, colour): (0,0) (1,1) (2,1) (4,5)
    kind = torch.nn.functional.one_hot(torch.tensor([0, 1, 3, 4]), 5).float()  # third kind wrong
    color = torch.nn.functional.one_hot(torch.tensor([0, 2, 1, 5]), 6).float()  # second wrong
    monkeypatch.setattr(ShapeClassifier, "forward", lambda self, x: (kind, color))
    scores = model.adherence(torch.zeros(4, 3, 32, 32), asked)
    assert scores == {"kind": 0.75, "color": 0.75, "both": 0.5}


def test_training_learns_colour_and_round_trips(tmp_path: Path) -> None:
    config = ClassifierConfig(width=16, resolution=32)
    result = train_shape_classifier(
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
    loaded = load_classifier(tmp_path / "ev")
    assert loaded.config == config
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loaded(x)[0].shape == (2, 5) and loaded.embed(x).shape == (2, 64)
