"""Properties of the sampler and schedule maths over seeded random cases: any valid schedule,
step count, spacing, parameterisation and sampler gives finite samples, and a deterministic
sampler's sample of one seed does not depend on which other samples share its batch."""

import random

import pytest
import torch

from ldmkit.diffusion import cosine_schedule, linear_schedule
from ldmkit.diffusion.schedule import NoiseSchedule
from ldmkit.samplers import SAMPLERS, sample
from ldmkit.samplers.options import SPACINGS

CASES = 40
DETERMINISTIC = ("ddim", "plms", "dpm++2m")  # ddim at eta 0


def _schedule(rng: random.Random) -> NoiseSchedule:
    timesteps = rng.choice([10, 50, 200, 1000])
    if rng.random() < 0.5:
        start = 10 ** rng.uniform(-5, -3)
        return linear_schedule(timesteps, start, min(0.05, start * 10 ** rng.uniform(0.5, 2.5)))
    return cosine_schedule(timesteps, rng.uniform(0.001, 0.02))


def _denoiser(seed: int):
    """A smooth, per-sample denoiser with random weights: output(x, t) for any prediction."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(4, 4, generator=generator) / 2

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        phase = (t.float() / 1000.0).view(-1, 1)
        return torch.tanh(x @ weight + phase)

    return denoise


def _case(i: int) -> dict:
    rng = random.Random(i)
    schedule = _schedule(rng)
    name = rng.choice(list(SAMPLERS))
    options: dict = {"spacing": rng.choice(SPACINGS), "prediction": rng.choice(["eps", "v", "x0"])}
    if name == "ddim" and rng.random() < 0.5:
        options["eta"] = rng.uniform(0, 1)
    steps = rng.randint(1, min(50, schedule.num_timesteps))
    return {"name": name, "schedule": schedule, "steps": steps, "options": options, "seed": i}


def _generators(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed) for seed in seeds]


@pytest.mark.parametrize("i", range(CASES))
def test_any_valid_case_gives_finite_samples(i: int) -> None:
    case = _case(i)
    out = sample(
        case["name"],
        _denoiser(case["seed"]),
        (3, 4),
        case["schedule"],
        case["steps"],
        generators=_generators([0, 1, 2]),
        **case["options"],
    )
    assert out.shape == (3, 4) and torch.isfinite(out).all(), case


@pytest.mark.parametrize("i", range(CASES))
def test_deterministic_samplers_ignore_the_rest_of_the_batch(i: int) -> None:
    case = _case(i)
    rng = random.Random(1000 + i)
    name = rng.choice(DETERMINISTIC)
    options = {k: v for k, v in case["options"].items() if k != "eta"}
    seeds = rng.sample(range(100), 4)

    def run(batch: list[int]) -> torch.Tensor:
        return sample(
            name,
            _denoiser(case["seed"]),
            (len(batch), 4),
            case["schedule"],
            case["steps"],
            generators=_generators(batch),
            **options,
        )

    together = run(seeds)
    alone = torch.cat([run([seed]) for seed in seeds])
    shuffled = run(seeds[::-1]).flip(0)
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(together, shuffled, rtol=1e-5, atol=1e-6)
