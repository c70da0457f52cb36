"""What the eval commands score against: the held-out split of the data a checkpoint was
trained on (or of `--data`), and an evaluator that fits that data (never the shapes one by
accident)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ldmkit.data.config import DataConfig
    from ldmkit.metrics.class_evaluator import ClassEvaluator

# `--data` of the eval commands.
EvalDataOption = Annotated[
    str | None,
    typer.Option(
        help="Score against the held-out files of this data (an image folder, shards:DIR or "
        "shards:PATTERN, emoji:DIR, shapes or fashion-mnist) instead of the checkpoint's "
        "recorded training data; the recorded split, fit and resolution are kept"
    ),
]


def heldout_config(
    checkpoint: Path, spec: str | None, model: str = "latent-diffusion"
) -> DataConfig:
    """The checkpoint's training data with `--data`'s kind and path (a CheckpointError when it
    records none and no `--data` is given)."""
    from ldmkit.checkpoint import CheckpointError, training_data
    from ldmkit.data.config import DataConfig
    from ldmkit.data.spec import data_fields

    try:
        recorded = training_data(checkpoint, model)
    except CheckpointError:
        if spec is None:
            raise
        recorded = DataConfig(cache=False)
    if spec is None:
        return recorded
    return dataclasses.replace(recorded, **data_fields(spec))


def recorded_kind(checkpoint: Path, model: str = "latent-diffusion") -> str | None:
    """The kind of data the checkpoint was trained on, or None when it does not say."""
    from ldmkit.checkpoint import CheckpointError, training_data

    try:
        return training_data(checkpoint, model).kind
    except CheckpointError:
        return None


def fitting_evaluator(path: Path | None, kind: str | None, device: str, use: str) -> ClassEvaluator:
    """The evaluator at `path`; without one, the shipped shapes evaluator only for models
    trained on shapes. Otherwise a ValueError naming the options (`use`: what it would score)."""
    from ldmkit.assets import SHAPES_EVALUATOR
    from ldmkit.checkpoint import load_evaluator
    from ldmkit.hardware import select_device

    if path is None and kind != "shapes":
        trained = f"was trained on {kind} data" if kind else "does not record its training data"
        raise ValueError(
            f"this model {trained}, and the shipped evaluator knows only shapes, so it cannot "
            f"score {use}: pass --evaluator DIR (trained with `ldmkit train-evaluator --data "
            "DIR` on labelled data like the model's)"
            + (" or --inception WEIGHTS for FID in the standard features" if use == "FID" else "")
        )
    return load_evaluator(path or SHAPES_EVALUATOR, select_device(device))


def with_data_overrides(data: DataConfig, overrides: list[str] | None) -> DataConfig:
    """`data` with `--set data.KEY=VALUE` applied (other keys are refused: ValueError)."""
    if not overrides:
        return data
    from ldmkit.config import apply_overrides, from_dict, to_dict
    from ldmkit.data.config import DataConfig

    for override in overrides:
        if not override.startswith("data."):
            raise ValueError(
                f"--set {override}: only data.* settings apply here "
                "(for example --set data.fit=native)"
            )
    values = apply_overrides({"data": to_dict(data)}, overrides)
    return from_dict(DataConfig, values["data"])
