"""SamplingOptions: everything a user chooses about sampling, validated once where it enters
(the CLI, Python, the coming HTTP API) and passed whole down to `LatentDiffusion.sample`."""

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, get_args

from ldmkit.precision import DTYPES
from ldmkit.samplers.registry import SAMPLERS, sampler_parameters
from ldmkit.samplers.timesteps import Spacing

PRECISIONS = ("auto", *DTYPES)
SPACINGS: tuple[str, ...] = get_args(Spacing)


@dataclass(frozen=True)
class SamplingOptions:
    """How to sample: which sampler, how many steps, how much guidance, which seed, at which
    precision, compiled or not, in tiles or not. Invalid values raise a ValueError that names
    the option, the value and the valid ones."""

    sampler: str = "ddim"  # a name in ldmkit.samplers.SAMPLERS
    steps: int = 50
    # Classifier-free guidance scale (1 = none); None: the model's default (`default_guidance`).
    guidance: float | None = None
    # phi of guidance rescale (Lin et al. 2024): 0 = plain guidance, 0.7 their choice.
    guidance_rescale: float = 0.0
    # DDIM's stochasticity (0 = deterministic, 1 = DDPM's variance); other samplers take none.
    eta: float = 0.0
    spacing: Spacing | None = None  # which timesteps; None: the sampler's default
    seed: int = 0  # sample i draws its noise from seed + i
    precision: str = "fp32"  # the UNet's: fp32, bf16, fp16 or auto
    compile: bool = False  # the UNet through CompiledDenoiser
    tile: int | None = None  # denoise and decode in blended latent tiles of this side

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}; got {self.sampler!r}")
        _check_int("steps", self.steps, 1)
        if self.guidance is not None and not (
            _is_number(self.guidance) and math.isfinite(self.guidance) and self.guidance >= 0
        ):
            raise ValueError(
                f"guidance must be a finite number >= 0 (1 = no guidance); got {self.guidance!r}"
            )
        if not (_is_number(self.guidance_rescale) and 0.0 <= self.guidance_rescale <= 1.0):
            raise ValueError(
                f"guidance_rescale must be a number in [0, 1] (0 = off); got "
                f"{self.guidance_rescale!r}"
            )
        if not (_is_number(self.eta) and math.isfinite(self.eta) and self.eta >= 0):
            raise ValueError(f"eta must be a finite number >= 0; got {self.eta!r}")
        if self.eta and "eta" not in sampler_parameters(self.sampler):
            takes = [name for name in SAMPLERS if "eta" in sampler_parameters(name)]
            raise ValueError(
                f"eta is an option of {', '.join(takes)}, not of {self.sampler}; leave it at 0"
            )
        if self.spacing is not None and self.spacing not in SPACINGS:
            raise ValueError(f"spacing must be one of {', '.join(SPACINGS)}; got {self.spacing!r}")
        _check_int("seed", self.seed, 0)
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}"
            )
        if self.tile is not None:
            _check_int("tile", self.tile, 1)

    def sampler_options(self) -> dict[str, Any]:
        """The keyword arguments these options give the sampler (beyond steps)."""
        options: dict[str, Any] = {}
        if self.spacing is not None:
            options["spacing"] = self.spacing
        if self.eta:
            options["eta"] = self.eta
        return options

    def replace(self, **changes: Any) -> "SamplingOptions":
        """A copy with `changes`, validated again."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The options as plain values (for image metadata and reports)."""
        return asdict(self)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
