"""The denoising loss: per-sample MSE and min-SNR-gamma weights for eps, v and x0 targets."""

import pytest
import torch

from ldmkit.diffusion import (
    PREDICTIONS,
    DiffusionLossConfig,
    NoiseSchedule,
    diffusion_loss,
    min_snr_weight,
    q_sample,
    target_for,
    to_x0,
    x0_to_eps,
)


def _schedule() -> NoiseSchedule:
    # alpha_bar = 0.9, 0.5, 0.1, i.e. SNR = 9, 1, 1/9.
    return NoiseSchedule(torch.tensor([0.1, 1 - 0.5 / 0.9, 0.8], dtype=torch.float64))


def test_snr_of_the_hand_made_schedule() -> None:
    snr = _schedule().snr(torch.tensor([0, 1, 2]))
    assert torch.allclose(snr, torch.tensor([9.0, 1.0, 1 / 9], dtype=torch.float64))


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("x0", [5.0, 1.0, 1 / 9]),  # min(SNR, 5)
        ("eps", [5 / 9, 1.0, 1.0]),  # min(SNR, 5) / SNR
        ("v", [5 / 10, 1 / 2, 0.1]),  # min(SNR, 5) / (SNR + 1)
    ],
)
def test_min_snr_weights_by_hand(prediction: str, expected: list[float]) -> None:
    snr = _schedule().snr(torch.tensor([0, 1, 2]))
    weight = min_snr_weight(snr, 5.0, prediction)  # type: ignore[arg-type]
    assert torch.allclose(weight, torch.tensor(expected, dtype=torch.float64), rtol=1e-12)


def _outputs(prediction: str) -> tuple[torch.Tensor, ...]:
    schedule = _schedule()
    generator = torch.Generator().manual_seed(0)
    x0, eps, error = (torch.randn(3, 2, 4, generator=generator, dtype=torch.float64) for _ in "abc")
    t = torch.tensor([0, 1, 2])
    x_t = q_sample(schedule, x0, t, eps)
    # A model whose x0 estimate is off by `error`, expressed in each parameterisation.
    x0_hat = x0 + error
    eps_hat = x0_to_eps(x_t, x0_hat, schedule.alpha_bar_at(t)[:, None, None])
    output = target_for(prediction, x0_hat, eps_hat, t, schedule)  # type: ignore[arg-type]
    assert torch.allclose(to_x0(prediction, output, x_t, t, schedule), x0_hat, atol=1e-10)
    return output, x0, eps, t, error


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_min_snr_loss_equals_clipped_snr_times_x0_error(prediction: str) -> None:
    output, x0, eps, t, error = _outputs(prediction)
    loss = diffusion_loss(output, x0, eps, t, _schedule(), prediction, min_snr_gamma=5.0)
    expected = torch.tensor([5.0, 1.0, 1 / 9], dtype=torch.float64) * error.square().mean((1, 2))
    assert loss.shape == (3,)
    assert torch.allclose(loss, expected, rtol=1e-9)


def test_unweighted_loss_is_per_sample_mse() -> None:
    output, x0, eps, t, _ = _outputs("eps")
    loss = diffusion_loss(output, x0, eps, t, _schedule(), "eps")
    assert torch.allclose(loss, (output - eps).square().mean((1, 2)), rtol=1e-12)


def test_loss_config_validation() -> None:
    assert DiffusionLossConfig().prediction == "eps"
    with pytest.raises(ValueError, match="min_snr_gamma"):
        DiffusionLossConfig(min_snr_gamma=0.0)
    with pytest.raises(ValueError, match="eps, v, x0"):
        DiffusionLossConfig(prediction="score")  # type: ignore[arg-type]
