"""Classifier-free guidance: one batched call per step, exact at scale 1, dict conditions."""

import pytest
import torch

from ldmkit.diffusion import linear_schedule
from ldmkit.samplers import classifier_free_guidance, sample


class CountingModel:
    """model_fn(x, t, cond) = 0.1 x + cond (+ cond["extra"]), counting calls and batch sizes."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def __call__(self, x, t, cond):
        self.batch_sizes.append(x.shape[0])
        assert t.shape == (x.shape[0],)
        if isinstance(cond, dict):
            return 0.1 * x + cond["y"] + cond["extra"]
        return 0.1 * x + cond


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x, cond, uncond = (torch.randn(3, 4, generator=generator) for _ in range(3))
    return x, torch.full((3,), 500), cond, uncond


def test_guided_output_and_one_batched_call() -> None:
    x, t, cond, uncond = _inputs()
    model = CountingModel()
    guided = classifier_free_guidance(model, cond, uncond, scale=7.5)(x, t)
    expected = (0.1 * x + uncond) + 7.5 * ((0.1 * x + cond) - (0.1 * x + uncond))
    assert torch.allclose(guided, expected, atol=1e-5)
    assert model.batch_sizes == [6]  # [uncond; cond] in one call


def test_scale_one_is_the_conditional_model_exactly() -> None:
    x, t, cond, uncond = _inputs()
    guided = classifier_free_guidance(CountingModel(), cond, uncond, scale=1.0)(x, t)
    assert torch.equal(guided, CountingModel()(x, t, cond))


def test_dict_conditions_are_concatenated_per_key() -> None:
    x, t, cond, uncond = _inputs()
    model = CountingModel()
    denoise = classifier_free_guidance(
        model, {"y": cond, "extra": cond}, {"y": uncond, "extra": uncond}, scale=2.0
    )
    expected = (0.1 * x + 2 * uncond) + 2.0 * (2 * cond - 2 * uncond)
    assert torch.allclose(denoise(x, t), expected, atol=1e-5)
    with pytest.raises(ValueError, match="keys"):
        classifier_free_guidance(model, {"y": cond}, {"z": uncond}, 2.0)
    with pytest.raises(TypeError, match="both be tensors"):
        classifier_free_guidance(model, cond, {"y": uncond}, 2.0)


def test_condition_batch_must_match() -> None:
    x, t, cond, uncond = _inputs()
    denoise = classifier_free_guidance(CountingModel(), cond[:1], uncond[:1], 3.0)
    with pytest.raises(ValueError, match="batch 1 but x_t has 3"):
        denoise(x, t)


def test_a_guided_sampler_calls_the_model_once_per_step() -> None:
    model = CountingModel()
    _, _, cond, uncond = _inputs()
    denoise = classifier_free_guidance(model, cond, uncond, scale=3.0)
    sample("ddim", denoise, (3, 4), linear_schedule(), 12, generators=None)
    assert model.batch_sizes == [6] * 12


def test_guidance_rescale_matches_the_conditional_spread_and_blends_linearly() -> None:
    x, t, cond, uncond = _inputs()
    model = CountingModel()
    plain = classifier_free_guidance(model, cond, uncond, scale=7.5)(x, t)
    assert torch.equal(classifier_free_guidance(model, cond, uncond, 7.5, rescale=0.0)(x, t), plain)
    full = classifier_free_guidance(model, cond, uncond, 7.5, rescale=1.0)(x, t)
    conditional = 0.1 * x + cond
    # phi = 1: each sample's guided output takes the conditional output's standard deviation
    # (Lin et al. 2024, Eq. 15), keeping its direction.
    torch.testing.assert_close(full.std(1), conditional.std(1))
    torch.testing.assert_close(
        full / full.norm(dim=1, keepdim=True), plain / plain.norm(dim=1, keepdim=True)
    )
    assert (full.std(1) < plain.std(1)).all()  # strong guidance inflates the spread; undone
    half = classifier_free_guidance(model, cond, uncond, 7.5, rescale=0.5)(x, t)
    torch.testing.assert_close(half, 0.5 * full + 0.5 * plain)  # Eq. 16: a linear blend
    with pytest.raises(ValueError, match=r"guidance rescale must lie in \[0, 1\], got 2"):
        classifier_free_guidance(model, cond, uncond, 7.5, rescale=2.0)
