"""Learning-rate multiplier: warm-up, constant, cosine decay."""

import itertools

import pytest

from ldmkit.training.lr_schedule import lr_multiplier


def test_warmup_then_constant() -> None:
    assert lr_multiplier(0, 100, warmup_steps=10) == pytest.approx(0.1)
    assert lr_multiplier(9, 100, warmup_steps=10) == 1.0
    assert lr_multiplier(50, 100, warmup_steps=10) == 1.0


def test_cosine_decays_to_min_ratio() -> None:
    values = [lr_multiplier(s, 110, 10, "cosine", 0.1) for s in range(10, 111)]
    assert values[0] == pytest.approx(1.0)
    assert values[50] == pytest.approx(0.55)  # half way: (1 + 0.1) / 2
    assert values[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(values))
