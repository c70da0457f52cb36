"""A diffusion config fitted to its data: a class-conditional model on an image folder gets as
many classes as the folder has class sub-folders."""

from __future__ import annotations

import dataclasses

from ldmkit.conditioning import ClassCondition
from ldmkit.training.config import DiffusionTrainConfig


def fit_classes_to_folder(config: DiffusionTrainConfig) -> tuple[DiffusionTrainConfig, str]:
    """`config` with its class count set from the folder's sub-folders, and a line saying so
    ("" when nothing changed). A ValueError when a class model meets a folder without classes."""
    data = config.data
    entries = [c for c in config.model.conditioners if isinstance(c, ClassCondition)]
    if data.kind not in ("folder", "shards") or not entries:
        return config, ""
    from ldmkit.data.factory import data_class_names

    names = data_class_names(data)
    if not names:
        raise ValueError(
            f"--data {data.path}: a class-conditional preset needs one sub-folder per class "
            "(DIR/cat/*.png, DIR/dog/*.png) and no captions; for captions use --preset "
            "shapes-text, for neither --preset uncond"
        )
    count = len(names)
    if entries[0].num_classes == count and config.model.unet.num_classes == count + 1:
        return config, ""
    conditioners = tuple(
        dataclasses.replace(c, num_classes=count) if isinstance(c, ClassCondition) else c
        for c in config.model.conditioners
    )
    unet = dataclasses.replace(config.model.unet, num_classes=count + 1)
    model = dataclasses.replace(config.model, unet=unet, conditioners=conditioners)
    shown = ", ".join(names[:6]) + (", ..." if count > 6 else "")
    note = f"{count} classes from the sub-folders of {data.path} ({shown})"
    return dataclasses.replace(config, model=model), note
