"""FID, KID and precision/recall against held-out data (`evaluation.fid`): features of the first
n dataset images through any feature network (and the refusal of too few images), and the scores
of a feature set against itself, a shifted copy, and sets too small for precision/recall."""

from typing import Any

import pytest
import torch

from ldmkit.evaluation.fid import dataset_features, distribution_scores


class ChannelMeans(torch.nn.Module):
    """A stand-in feature network: each image's per-channel means (D = 3), plus the batch sizes
    it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # `feature_device` reads its device
        self.batches: list[int] = []

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        self.batches.append(len(images))
        return images.mean(dim=(2, 3))


def numbered_images(count: int) -> list[dict[str, Any]]:
    """Items whose image i (3, 4, 4) holds the value i / count in every pixel."""
    return [{"image": torch.full((3, 4, 4), i / count), "label": i} for i in range(count)]


def features(n: int, d: int = 4, seed: int = 0) -> torch.Tensor:
    """`n` standard normal features (n, d), reproducibly."""
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_dataset_features_embed_the_first_n_images_in_batches() -> None:
    network, data = ChannelMeans(), numbered_images(10)
    out = dataset_features(network, data, n=7, batch_size=3)
    assert out.shape == (7, 3)
    expected = (torch.arange(7) / 10).unsqueeze(1).expand(7, 3)
    torch.testing.assert_close(out, expected)  # images 0..6 in order, none of 7..9
    assert network.batches == [3, 3, 1]


def test_dataset_features_refuse_more_images_than_the_dataset_holds() -> None:
    with pytest.raises(ValueError, match=r"holds 5 images.*the 6 asked for"):
        dataset_features(ChannelMeans(), numbered_images(5), n=6)
    assert dataset_features(ChannelMeans(), numbered_images(5), n=5).shape == (5, 3)


def test_scores_of_a_feature_set_against_itself_and_a_shifted_copy() -> None:
    real = features(64)
    same = distribution_scores(real, real.clone())
    shift = torch.full((real.shape[1],), 1.0)
    shifted = distribution_scores(real, real + shift)
    assert abs(same["fid"]) < 1e-6
    # Equal covariances: FID is the squared distance between the means, here |shift|^2.
    assert shifted["fid"] == pytest.approx(float(shift.square().sum()), rel=1e-6)
    assert abs(same["kid"]) < shifted["kid"] / 10 and shifted["kid"] > 0
    assert same["kid_std"] >= 0 and shifted["kid_std"] >= 0
    # Every point lies inside its own ball: a set fully covers itself.
    assert same["precision"] == same["recall"] == 1.0
    far = distribution_scores(real, real + 100)
    assert far["precision"] == far["recall"] == 0.0


def test_precision_and_recall_only_with_more_than_three_points_a_side() -> None:
    real = features(20)
    for small in (3, 2):
        scores = distribution_scores(real, features(small, seed=1))
        assert {"fid", "kid", "kid_std"} <= scores.keys()
        assert "precision" not in scores and "recall" not in scores
        assert "precision" not in distribution_scores(features(small, seed=1), real)
    scores = distribution_scores(real, features(4, seed=1))
    assert 0 <= scores["precision"] <= 1 and 0 <= scores["recall"] <= 1
