"""SamplingOptions: everything a user chooses about sampling, validated once where it enters
(the CLI, Python, the coming HTTP API) and passed whole down to `LatentDiffusion.sample`."""

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, get_args

from ldmkit.precision import DTYPES
from ldmkit.samplers.grid import FINALS
from ldmkit.samplers.names import sampler_from_name
from ldmkit.samplers.registry import SAMPLERS, sampler_parameters
from ldmkit.samplers.timesteps import Spacing

PRECISIONS = ("auto", *DTYPES)
SPACINGS: tuple[str, ...] = get_args(Spacing)


@dataclass(frozen=True)
class SamplingOptions:
    """How to sample: which sampler, how many steps, how much guidance, which seed, at which
    precision, compiled or not, in tiles or not. Invalid values raise a ValueError that names
    the option, the value and the valid ones.

    `sampler` also takes other tools' names ("DPM++ 2M Karras", "Euler a",
    "EulerDiscreteScheduler"); they are stored as ldmkit's name (and `karras`)."""

    sampler: str = "ddim"  # a name in ldmkit.samplers.SAMPLERS
    steps: int = 50
    # Classifier-free guidance scale (1 = none); None: the model's default (`default_guidance`).
    guidance: float | None = None
    # phi of guidance rescale (Lin et al. 2024): 0 = plain guidance, 0.7 their choice.
    guidance_rescale: float = 0.0
    # The fresh noise of DDIM (default 0 = deterministic, 1 = DDPM's variance), Euler a and
    # DPM++ 2M SDE (default 1); None: the sampler's default. The other samplers take none.
    eta: float | None = None
    spacing: Spacing | None = None  # which timesteps; None: the sampler's default
    karras: bool = False  # Karras et al. 2022 sigmas instead of the spacing's
    # Added to "leading" timesteps (Stable Diffusion ships 1); None: the model's convention.
    steps_offset: int | None = None
    # Where the last step lands: "zero" (clean data) or "sigma_min" (the first training
    # timestep, Stable Diffusion's DDIM / PLMS); None: the model's convention for the sampler.
    final: str | None = None
    timesteps: tuple[int | float, ...] | None = None  # explicit, decreasing; sets steps
    seed: int = 0  # sample i draws its noise from seed + i
    precision: str = "fp32"  # the UNet's: fp32, bf16, fp16 or auto
    compile: bool = False  # the UNet through CompiledDenoiser
    tile: int | None = None  # denoise (blended) and decode (seamless) in latent tiles this side

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            known = sampler_from_name(self.sampler) if isinstance(self.sampler, str) else None
            if known is None:
                raise ValueError(
                    f"sampler must be one of {', '.join(SAMPLERS)} (or a web-UI name such as "
                    f"'DPM++ 2M Karras', 'Euler a'); got {self.sampler!r}"
                )
            object.__setattr__(self, "sampler", known[0])
            object.__setattr__(self, "karras", self.karras or known[1])
        if self.timesteps is not None:
            object.__setattr__(self, "timesteps", tuple(self.timesteps))
            object.__setattr__(self, "steps", len(self.timesteps))
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
        self._check_eta()
        if self.spacing is not None and self.spacing not in SPACINGS:
            raise ValueError(f"spacing must be one of {', '.join(SPACINGS)}; got {self.spacing!r}")
        if not isinstance(self.karras, bool):
            raise ValueError(f"karras must be true or false; got {self.karras!r}")
        if self.karras and (self.spacing is not None or self.timesteps is not None):
            raise ValueError(
                "karras sets the sigmas itself: leave spacing and timesteps unset with it"
            )
        if self.steps_offset is not None:
            _check_int("steps_offset", self.steps_offset, 0)
        if self.final is not None and self.final not in FINALS:
            raise ValueError(f"final must be one of {', '.join(FINALS)}; got {self.final!r}")
        if self.timesteps is not None and not all(_is_number(t) and t >= 0 for t in self.timesteps):
            raise ValueError(f"timesteps must be numbers >= 0; got {self.timesteps!r}")
        _check_int("seed", self.seed, 0)
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}"
            )
        if self.tile is not None:
            _check_int("tile", self.tile, 1)

    def _check_eta(self) -> None:
        if self.eta is None:
            return
        if not (_is_number(self.eta) and math.isfinite(self.eta) and self.eta >= 0):
            raise ValueError(f"eta must be a finite number >= 0; got {self.eta!r}")
        if "eta" not in sampler_parameters(self.sampler):
            takes = [name for name in SAMPLERS if "eta" in sampler_parameters(name)]
            raise ValueError(
                f"eta is an option of {', '.join(takes)}, not of {self.sampler}; leave it unset"
            )

    def sampler_options(self) -> dict[str, Any]:
        """The keyword arguments these options give `ldmkit.samplers.sample` (beyond steps)."""
        options: dict[str, Any] = {}
        for name in ("spacing", "eta", "steps_offset", "final", "timesteps"):
            if getattr(self, name) is not None:
                options[name] = getattr(self, name)
        if self.karras:
            options["karras"] = True
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
