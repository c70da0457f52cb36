"""Per-sample generators: same seeds give the same samples, whatever the batching."""

import pytest
import torch

from ldmkit.samplers import SAMPLERS, randn_per_sample, sample


def _generators(seeds: range) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def test_randn_per_sample_rows_follow_their_generator() -> None:
    noise = randn_per_sample((3, 2, 4), _generators(range(3)), dtype=torch.float64)
    assert noise.shape == (3, 2, 4) and noise.dtype == torch.float64
    for i in range(3):
        row = torch.randn(2, 4, generator=torch.Generator().manual_seed(i))
        assert torch.equal(noise[i], row.double())
    with pytest.raises(ValueError, match="one per sample"):
        randn_per_sample((3, 2), _generators(range(2)))


def test_ddim_eta_zero_is_deterministic(gaussian) -> None:
    runs = [
        sample(
            "ddim",
            gaussian.denoiser(),
            (6, 4),
            gaussian.schedule,
            10,
            generators=_generators(range(6)),
        )
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_samples_do_not_depend_on_the_batching(gaussian, name: str) -> None:
    options = {"eta": 0.5} if name == "ddim" else {}  # stochastic DDIM draws per-step noise too
    whole = sample(
        name,
        gaussian.denoiser(),
        (6, 4),
        gaussian.schedule,
        10,
        generators=_generators(range(6)),
        **options,
    )
    parts = [
        sample(
            name,
            gaussian.denoiser(),
            (len(seeds), 4),
            gaussian.schedule,
            10,
            generators=_generators(seeds),
            **options,
        )
        for seeds in (range(0, 2), range(2, 6))
    ]
    assert torch.equal(whole, torch.cat(parts))


def test_initial_noise_is_used_as_given(gaussian) -> None:
    noise = torch.randn(5, 4)
    a = sample("ddim", gaussian.denoiser(), (5, 4), gaussian.schedule, 5, initial_noise=noise)
    b = sample("ddim", gaussian.denoiser(), (5, 4), gaussian.schedule, 5, initial_noise=noise)
    assert torch.equal(a, b) and a.dtype == torch.float32
    with pytest.raises(ValueError, match="initial_noise has shape"):
        sample("ddim", gaussian.denoiser(), (4, 4), gaussian.schedule, 5, initial_noise=noise)
