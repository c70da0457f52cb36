"""Train the shapes adherence evaluator on ground-truth labels and measure its held-out accuracy."""

import time
from pathlib import Path

import torch

from ldmkit.checkpoint import save_classifier
from ldmkit.data.collate import collate
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset
from ldmkit.metrics.shape_classifier import ClassifierConfig, ShapeClassifier
from ldmkit.training.data_stream import batch_loader
from ldmkit.training.progress_bar import TrainingProgress
from ldmkit.training.runtime import seed_everything, select_device, tune_allocator


def train_shape_classifier(
    out: Path,
    steps: int = 1500,
    batch_size: int = 64,
    train_size: int = 20000,
    heldout: int = 1000,
    config: ClassifierConfig | None = None,
    seed: int = 0,
    show_progress: bool = True,
) -> dict[str, float]:
    """Train on single-object shapes, save to `out`, return held-out accuracies and minutes."""
    config = config or ClassifierConfig()
    tune_allocator()
    seed_everything(seed)
    device = select_device("auto")
    data = DataConfig(resolution=config.resolution, size=train_size, single_object=True, seed=seed)
    train = build_dataset(data, "train")
    model = ShapeClassifier(config).to(device)
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
    held = build_dataset(data, "heldout", heldout)
    scores = {"kind": 0.0, "color": 0.0, "both": 0.0}
    for start in range(0, heldout, 250):
        items = collate([held[i] for i in range(start, min(heldout, start + 250))])
        part = model.adherence(items["image"].to(device), items["label"].to(device))
        for key in scores:
            scores[key] += part[key] * len(items["label"]) / heldout
    result = {**{f"heldout_{k}": v for k, v in scores.items()}, "minutes": minutes}
    save_classifier(model, out, {"training": {"steps": steps, **result}})
    return result
