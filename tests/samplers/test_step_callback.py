"""The per-step callback every sampler takes: progress, previews, cancelling."""

import pytest
import torch

from ldmkit.diffusion import ScheduleConfig, build_schedule
from ldmkit.samplers import SAMPLERS, sample


def _denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 0.1 * x_t  # any smooth eps prediction


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_callback_sees_every_step_and_the_result(name: str) -> None:
    schedule = build_schedule(ScheduleConfig(num_timesteps=100))
    seen: list[tuple[int, int, torch.Tensor]] = []
    generators = [torch.Generator().manual_seed(i) for i in range(2)]
    out = sample(
        name,
        _denoise,
        (2, 3, 4, 4),
        schedule,
        5,
        generators=generators,
        callback=lambda step, total, x: seen.append((step, total, x.clone())),
    )
    assert [(step, total) for step, total, _ in seen] == [(k, 5) for k in range(1, 6)]
    assert torch.equal(seen[-1][2], out)  # the last step's x is the result
    assert not torch.equal(seen[0][2], seen[1][2])  # each call sees that step's x
    generators = [torch.Generator().manual_seed(i) for i in range(2)]
    plain = sample(name, _denoise, (2, 3, 4, 4), schedule, 5, generators=generators)
    assert torch.equal(plain, out)  # watching changes nothing


class Cancelled(Exception):
    pass


def test_raising_in_the_callback_cancels() -> None:
    schedule = build_schedule(ScheduleConfig(num_timesteps=100))
    calls: list[int] = []

    def cancel_after_two(step: int, total: int, x: torch.Tensor) -> None:
        if step == 2:
            raise Cancelled
        calls.append(step)

    counted: list[int] = []

    def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        counted.append(1)
        return 0.1 * x_t

    with pytest.raises(Cancelled):
        sample("ddim", denoise, (1, 3, 4, 4), schedule, 10, callback=cancel_after_two)
    assert calls == [1] and len(counted) == 2  # stopped after the second step's model call
