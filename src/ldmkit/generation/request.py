"""What one generation asks for: the type `ldmkit sample` builds from its flags, the HTTP API
reads from a job's JSON, and an image's parameters chunk records, so the three cannot drift."""

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ldmkit.inputs import InputError, check_count, check_fraction
from ldmkit.samplers import SamplingOptions

LORA_TAG = re.compile(r"<lora:[^>]*>", re.IGNORECASE)  # as the web UIs write a LoRA in a prompt
# A layout box as given: {"class": "red circle" or 12, "box": [x0, y0, x1, y1]} (fractions).
Box = dict[str, Any]


@dataclass(frozen=True)
class GenerationRequest:
    """`count` images from one model. Conditions, each for the models that take it: `prompts`
    (cycled over the images) and `negative_prompt` (guidance steers away from it), `classes`
    (cycled; empty: every class in turn), `layouts` (lists of boxes, cycled), `semantic` (a
    label-map PNG), `init_image` + `strength` (image-to-image), `mask` (inpainting: white =
    repaint) and `low_res` (the image a super-resolution model enlarges). `width` / `height` in
    pixels (default: the training size). `options` are the sampler's (sampler, steps, guidance,
    seed, precision, tile...); image i draws its noise from seed + i. Invalid values raise an
    InputError naming the field."""

    prompts: tuple[str, ...] = ()
    negative_prompt: str | None = None
    classes: tuple[int, ...] = ()
    layouts: tuple[tuple[Box, ...], ...] = ()
    semantic: str | None = None
    init_image: str | None = None
    strength: float = 0.75
    mask: str | None = None
    low_res: str | None = None
    width: int | None = None
    height: int | None = None
    count: int = 1
    options: SamplingOptions = field(default_factory=SamplingOptions)

    def __post_init__(self) -> None:
        for name in ("prompts", "classes", "layouts"):
            value = getattr(self, name)
            if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
                raise InputError(f"{name} must be a list; got {value!r}", name)
            object.__setattr__(self, name, tuple(value))
        if not all(isinstance(p, str) and p.strip() for p in self.prompts):
            raise InputError(
                f"prompts must be non-empty strings; got {list(self.prompts)!r}", "prompts"
            )
        if self.negative_prompt is not None and not isinstance(self.negative_prompt, str):
            raise InputError(
                f"negative_prompt must be a string; got {self.negative_prompt!r}", "negative_prompt"
            )
        for prompt in (*self.prompts, self.negative_prompt or ""):
            tag = LORA_TAG.search(prompt)
            if tag:  # the text encoder would read it as words
                raise InputError(
                    f"{tag.group(0)!r} in a prompt is a LoRA tag, which the model would read as "
                    "words: give the LoRA as --lora FILE:SCALE (`ldmkit sample`), or to a server "
                    "started with --lora-dir",
                    "prompts",
                )
        for c in self.classes:
            _named("classes", lambda c=c: check_count("classes", c, minimum=0))
        for layout in self.layouts:
            if not isinstance(layout, list | tuple) or not all(isinstance(b, dict) for b in layout):
                raise InputError(
                    'layouts must be lists of {"class": ..., "box": [x0, y0, x1, y1]}; got '
                    f"{layout!r}",
                    "layouts",
                )
        object.__setattr__(self, "layouts", tuple(tuple(layout) for layout in self.layouts))
        for name in ("semantic", "init_image", "mask", "low_res"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value):
                raise InputError(f"{name} must be a file path; got {value!r}", name)
        _named("strength", lambda: check_fraction("strength", self.strength))
        for name in ("width", "height"):
            if getattr(self, name) is not None:
                _named(name, lambda name=name: check_count(name, getattr(self, name)))
        _named("count", lambda: check_count("count", self.count))
        if self.mask is not None and self.init_image is None:
            raise InputError(
                "mask needs init_image: the image whose masked part is repainted", "mask"
            )
        if not isinstance(self.options, SamplingOptions):
            raise InputError(f"options must be SamplingOptions; got {self.options!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, the sampling options beside the rest (one flat JSON object)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "options"}
        values["prompts"] = list(self.prompts)
        values["classes"] = list(self.classes)
        values["layouts"] = [list(layout) for layout in self.layouts]
        return {**values, **asdict(self.options)}

    @classmethod
    def from_dict(cls, values: dict[str, Any], strict: bool = True) -> "GenerationRequest":
        """The request of `to_dict`'s values (and of an HTTP job's JSON). `strict`: an unknown
        key is an error naming it; otherwise such keys are ignored (an image's other records)."""
        own = {f.name for f in fields(cls)} - {"options"}
        sampling = {f.name for f in fields(SamplingOptions)}
        unknown = set(values) - own - sampling
        if strict and unknown:
            raise InputError(
                f"unknown field(s) {', '.join(sorted(unknown))}; the fields are "
                f"{', '.join(sorted(own | sampling))}",
                sorted(unknown)[0],
            )
        try:
            options = SamplingOptions(**{k: v for k, v in values.items() if k in sampling})
        except (TypeError, ValueError) as error:
            first = str(error).split()[0] if str(error) else ""
            raise InputError(str(error), first if first in sampling else None) from None
        try:
            return cls(**{k: v for k, v in values.items() if k in own}, options=options)
        except TypeError as error:
            raise InputError(str(error)) from None


def _named(field_name: str, check: Callable[[], Any]) -> None:
    """Run an `ldmkit.inputs` check, its InputError tagged with the field."""
    try:
        check()
    except InputError as error:
        raise InputError(str(error), field_name) from None
