"""Improved precision/recall: identical sets, disjoint sets, and a set covering part of another."""

import pytest
import torch

from ldmkit.metrics.precision_recall import knn_radii, precision_recall


def test_identical_sets_have_full_precision_and_recall() -> None:
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    assert precision_recall(x, x) == {"precision": 1.0, "recall": 1.0}


def test_far_apart_sets_score_zero() -> None:
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(100, 4, generator=g), torch.randn(100, 4, generator=g) + 100
    assert precision_recall(real, fake) == {"precision": 0.0, "recall": 0.0}


def test_collapsed_samples_are_precise_but_do_not_recall() -> None:
    # Real data: two well separated clusters; the samples cover only the first one.
    g = torch.Generator().manual_seed(2)
    real = torch.cat([torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g) + 20])
    fake = torch.randn(300, 2, generator=g)
    scores = precision_recall(real, fake)
    assert scores["precision"] > 0.9
    assert 0.4 < scores["recall"] < 0.6


def test_radii_are_the_kth_neighbour_and_chunking_does_not_matter() -> None:
    x = torch.tensor([[0.0], [1.0], [3.0], [6.0]])
    assert knn_radii(x, k=1).tolist() == [1.0, 1.0, 2.0, 3.0]
    y = torch.randn(50, 3, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(knn_radii(y, 3, chunk=7), knn_radii(y, 3, chunk=1024))


def test_bad_shapes_and_k_are_errors() -> None:
    with pytest.raises(ValueError, match="same D"):
        precision_recall(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="k must be"):
        knn_radii(torch.zeros(3, 2), k=3)
