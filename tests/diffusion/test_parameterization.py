"""eps <-> x0 <-> v conversions are exact inverses and agree with the regression targets."""

import pytest
import torch

from ldmkit.diffusion import (
    PREDICTIONS,
    eps_to_x0,
    linear_schedule,
    q_sample,
    target_for,
    to_eps,
    to_x0,
    v_to_eps,
    v_to_x0,
    velocity,
    x0_to_eps,
)

TOL = {"rtol": 0.0, "atol": 1e-10}


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 3, 4, 4, generator=generator, dtype=torch.float64)
    eps = torch.randn(5, 3, 4, 4, generator=generator, dtype=torch.float64)
    t = torch.tensor([0, 1, 250, 700, 999])
    return x0, eps, t, linear_schedule().alpha_bar[t].reshape(-1, 1, 1, 1)


def test_round_trips_are_exact_in_float64() -> None:
    x0, eps, _, alpha_bar = _data()
    x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps
    v = velocity(x0, eps, alpha_bar)
    assert torch.allclose(eps_to_x0(x_t, eps, alpha_bar), x0, **TOL)
    assert torch.allclose(x0_to_eps(x_t, x0, alpha_bar), eps, **TOL)
    assert torch.allclose(v_to_x0(x_t, v, alpha_bar), x0, **TOL)
    assert torch.allclose(v_to_eps(x_t, v, alpha_bar), eps, **TOL)
    # eps -> x0 -> eps and x0 -> eps -> x0 for arbitrary (not consistent) values.
    assert torch.allclose(x0_to_eps(x_t, eps_to_x0(x_t, x0, alpha_bar), alpha_bar), x0, **TOL)
    assert torch.allclose(eps_to_x0(x_t, x0_to_eps(x_t, eps, alpha_bar), alpha_bar), eps, **TOL)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_targets_convert_back_to_x0_and_eps(prediction: str) -> None:
    x0, eps, t, _ = _data()
    schedule = linear_schedule()
    x_t = q_sample(schedule, x0, t, eps)
    target = target_for(prediction, x0, eps, t, schedule)
    assert torch.allclose(to_x0(prediction, target, x_t, t, schedule), x0, **TOL)
    assert torch.allclose(to_eps(prediction, target, x_t, t, schedule), eps, **TOL)


def test_v_target_is_alpha_eps_minus_sigma_x0() -> None:
    x0, eps, t, alpha_bar = _data()
    v = target_for("v", x0, eps, t, linear_schedule())
    assert torch.allclose(v, alpha_bar.sqrt() * eps - (1 - alpha_bar).sqrt() * x0, **TOL)


def test_unknown_prediction_is_an_error() -> None:
    x0, eps, t, _ = _data()
    with pytest.raises(ValueError, match="eps, v, x0"):
        target_for("score", x0, eps, t, linear_schedule())  # type: ignore[arg-type]
