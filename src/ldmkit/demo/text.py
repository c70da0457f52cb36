"""`ldmkit demo`: text-to-image on shapes in under a minute of CPU.

A text-to-image checkpoint (by default the shipped `shapes_t2i` asset, whose config.json records
the command, seed and measured adherence) draws a few samples for each of a handful of prompts;
the one-object prompts are scored by the shipped shapes evaluator (kind and colour). With
`train`, the same model is first retrained from scratch by the recorded recipe (~26 min here).
Writes a labelled grid and a report.
"""

import dataclasses
import re
import time
from pathlib import Path
from typing import Any

import torch

from ldmkit.assets import SHAPES_AUTOENCODER, SHAPES_EVALUATOR, SHAPES_TEXT_TO_IMAGE
from ldmkit.checkpoint import load_evaluator, load_latent_diffusion, read_config, write_json
from ldmkit.data.shapes import COLOR_NAMES, SHAPE_KINDS, class_id_of
from ldmkit.evaluation.adherence import score_adherence
from ldmkit.evaluation.generate import sample_prompts
from ldmkit.images import labelled_grid
from ldmkit.samplers import SamplingOptions
from ldmkit.training.diffusion_presets import DIFFUSION_PRESETS
from ldmkit.training.diffusion_trainer import train_diffusion

DEMO_PROMPTS = (
    "a small red circle",
    "a large blue star",
    "a medium green square",
    "a large yellow triangle",
    "a medium purple ring",
    "a large orange circle above a small blue square",
)
ONE_OBJECT = re.compile(r"^an? (small|medium|large) (\w+) (\w+)$")


@dataclasses.dataclass(frozen=True)
class TextDemoConfig:
    """What the demo samples; `train` retrains the model first (`train_steps` and
    `train_images` default to the shipped model's recorded recipe)."""

    prompts: tuple[str, ...] = DEMO_PROMPTS
    per_prompt: int = 4
    guidance: float = 3.0
    sampler: str = "ddim"
    sampling_steps: int = 50
    seed: int = 0
    train: bool = False
    train_steps: int | None = None
    train_images: int | None = None


def prompt_class(prompt: str) -> int | None:
    """The shapes class a one-object prompt ("a small red circle") asks for, else None."""
    match = ONE_OBJECT.match(prompt.strip().lower())
    if match is None or match[2] not in COLOR_NAMES or match[3] not in SHAPE_KINDS:
        return None
    return class_id_of(match[3], match[2])


def retrain(out: Path, config: TextDemoConfig, recipe: Path = SHAPES_TEXT_TO_IMAGE) -> Path:
    """Train the shipped model's recipe (preset, steps, seed from its config.json) from scratch
    into `out`; returns the new model folder."""
    training = read_config(recipe, "latent-diffusion")["training"]
    preset = DIFFUSION_PRESETS[training["preset"]]
    run = dataclasses.replace(
        preset.run,
        steps=config.train_steps or training["steps"],
        seed=training["seed"],
        sample_every=training.get("sample_every", preset.run.sample_every),
        sample_count=training.get("sample_count", preset.run.sample_count),
    )
    data = dataclasses.replace(preset.data, size=config.train_images or preset.data.size)
    train = dataclasses.replace(preset, autoencoder=str(SHAPES_AUTOENCODER), data=data, run=run)
    return train_diffusion(train, out, resume=False).model_dir


def run_text_demo(
    out: Path, config: TextDemoConfig | None = None, checkpoint: Path = SHAPES_TEXT_TO_IMAGE
) -> dict[str, Any]:
    """Sample every prompt `per_prompt` times from `checkpoint` (or a retrained model), score the
    one-object prompts, write `text_to_image.png`, `report.json` and `report.md` into `out`."""
    config, out = config or TextDemoConfig(), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    trained_minutes = None
    if config.train:
        checkpoint = retrain(out / "t2i", config, checkpoint)
        trained_minutes = round((time.perf_counter() - started) / 60, 2)
    model = load_latent_diffusion(checkpoint)
    prompts = [p for p in config.prompts for _ in range(config.per_prompt)]
    began = time.perf_counter()
    images = sample_prompts(
        model,
        prompts,
        SamplingOptions(config.sampler, config.sampling_steps, config.guidance, seed=config.seed),
    )
    seconds = time.perf_counter() - began
    labelled_grid(images, config.per_prompt, list(config.prompts)).save(out / "text_to_image.png")
    scored = [i for i, p in enumerate(prompts) if prompt_class(p) is not None]
    adherence = {}
    if scored:
        labels = torch.tensor([prompt_class(prompts[i]) for i in scored])
        scores = score_adherence(load_evaluator(SHAPES_EVALUATOR), images[scored], labels)
        adherence = {k: round(v, 4) for k, v in scores.items()}
    recorded = read_config(Path(checkpoint), "latent-diffusion").get("adherence")
    report = {
        "checkpoint": str(checkpoint),
        "trained_minutes": trained_minutes,
        "prompts": list(config.prompts),
        "per_prompt": config.per_prompt,
        "guidance": config.guidance,
        "sampler": f"{config.sampler} {config.sampling_steps} steps",
        "seconds_per_image": round(seconds / len(prompts), 3),
        "one_object_samples": len(scored),
        "adherence": adherence,
        "recorded_adherence": recorded,
        "total_minutes": round((time.perf_counter() - started) / 60, 2),
    }
    write_json(out / "report.json", report)
    (out / "report.md").write_text(_markdown(report))
    return report


def _markdown(report: dict[str, Any]) -> str:
    trained = report["trained_minutes"]
    name = report["checkpoint"]
    if trained is not None:
        source = f"retrained now ({trained} min)"
    elif Path(name).resolve() == SHAPES_TEXT_TO_IMAGE.resolve():
        name, source = "ldmkit.assets: shapes_t2i", "shipped"
    else:
        source = "given"
    lines = [
        "# ldmkit demo: text-to-image on shapes",
        "",
        f"Model: `{name}` ({source}). {report['per_prompt']} samples per prompt, "
        f"{report['sampler']}, guidance {report['guidance']}: {report['seconds_per_image']} "
        f"s/image; total {report['total_minutes']} min.",
        "",
        "![samples, one row per prompt](text_to_image.png)",
        "",
    ]
    adherence = report["adherence"]
    if adherence:
        lines += [
            f"One-object prompts ({report['one_object_samples']} samples), scored by the shipped "
            f"evaluator: kind {adherence['kind']:.1%}, colour {adherence['color']:.1%}, both "
            f"{adherence['both']:.1%}.",
            "",
        ]
    recorded = report["recorded_adherence"]
    if recorded:
        lines += [
            f"Recorded for this checkpoint (n={recorded['n']}, guidance {recorded['guidance']}, "
            f"{recorded['sampler']} {recorded['steps']} steps): both {recorded['both']:.1%}.",
            "",
        ]
    return "\n".join(lines)
