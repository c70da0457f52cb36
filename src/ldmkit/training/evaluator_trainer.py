"""Train an adherence evaluator on ground-truth labels and measure its held-out accuracy."""

import time
from pathlib import Path

import torch

from ldmkit.checkpoint import save_evaluator
from ldmkit.data.collate import collate
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset
from ldmkit.hardware import select_device
from ldmkit.metrics.class_evaluator import ClassEvaluator, EvaluatorConfig
from ldmkit.training.data_stream import batch_loader
from ldmkit.training.progress_bar import TrainingProgress
from ldmkit.training.runtime import seed_everything, tune_allocator

# The label spaces the built-in datasets carry: shapes (5 kinds x 6 colours), Fashion-MNIST (10).
LABEL_SPACES: dict[str, tuple[int, int]] = {"shapes": (5, 6), "fashion-mnist": (10, 1)}


def label_space(data: str) -> tuple[int, int]:
    """(kinds, colours) of the labels of `data` (shapes, fashion-mnist or an image folder with
    one sub-folder per class); a clear error for unlabelled data."""
    if data in LABEL_SPACES:
        return LABEL_SPACES[data]
    if data.startswith("emoji:") or data == "emoji":
        raise ValueError(
            f"no evaluator label space for data {data!r}: emoji have captions, not classes; "
            f"use {', '.join(LABEL_SPACES)} or an image folder with one sub-folder per class"
        )
    from ldmkit.data.factory import data_class_names
    from ldmkit.data.spec import data_fields

    names = data_class_names(DataConfig(**data_fields(data)))
    if not names:
        raise ValueError(
            f"{data} has no class sub-folders (or has captions): an evaluator learns classes, "
            "so give a folder with one sub-folder per class (DIR/cat/*.png, DIR/dog/*.png)"
        )
    return len(names), 1


def evaluator_data(data: str, resolution: int, seed: int = 0, size: int = 20000) -> DataConfig:
    """The labelled training data of an evaluator for `data` (a built-in kind or a folder)."""
    label_space(data)
    if data in LABEL_SPACES:
        single = data == "shapes"  # shapes are labelled only with one object per image
        return DataConfig(
            kind=data,  # type: ignore[arg-type]
            resolution=resolution,
            size=size,
            single_object=single,
            seed=seed,
        )
    from ldmkit.data.spec import data_fields

    # A folder's evaluator holds out the same files as models trained on it with this seed.
    return DataConfig(resolution=resolution, seed=seed, **data_fields(data))


def train_evaluator(
    out: Path,
    steps: int = 1500,
    batch_size: int = 64,
    train_size: int = 20000,
    heldout: int = 1000,
    config: EvaluatorConfig | None = None,
    seed: int = 0,
    show_progress: bool = True,
    data: str = "shapes",
) -> dict[str, float]:
    """Train on `data`'s labelled images, save to `out`, return held-out accuracies and minutes."""
    kinds, colors = label_space(data)
    config = config or EvaluatorConfig(num_kinds=kinds, num_colors=colors)
    data_config = evaluator_data(data, config.resolution, seed, train_size)
    if (config.num_kinds, config.num_colors) != (kinds, colors):
        raise ValueError(
            f"{data} labels are {kinds} x {colors} classes, the evaluator config says "
            f"{config.num_kinds} x {config.num_colors}"
        )
    tune_allocator()
    seed_everything(seed)
    device = select_device("auto")
    train = build_dataset(data_config, "train")
    model = ClassEvaluator(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    started = time.perf_counter()
    with TrainingProgress(steps, enabled=show_progress, title="evaluator") as bar:
        for step, batch in enumerate(batch_loader(train, batch_size, seed, 0, steps)):
            for group in optimizer.param_groups:  # linear decay to 0 over the run
                group["lr"] = 2e-3 * (1 - step / steps)
            loss = model.loss(batch["image"].to(device), batch["label"].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            bar.update(step + 1, {"loss": loss.item()} if step % 25 == 0 else None)
    minutes = (time.perf_counter() - started) / 60
    model.eval()
    held = build_dataset(data_config, "heldout", heldout)
    count = min(heldout, len(held))  # type: ignore[arg-type]
    scores: dict[str, float] = {}
    for start in range(0, count, 250):
        items = collate([held[i] for i in range(start, min(count, start + 250))])
        part = model.adherence(items["image"].to(device), items["label"].to(device))
        for key, value in part.items():
            scores[key] = scores.get(key, 0.0) + value * len(items["label"]) / count
    result = {**{f"heldout_{k}": v for k, v in scores.items()}, "minutes": minutes}
    extra = {"training": {"data": data, "steps": steps, "seed": seed, "heldout": count, **result}}
    save_evaluator(model, out, extra)
    return result
