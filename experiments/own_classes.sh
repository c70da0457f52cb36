#!/usr/bin/env bash
# A class-conditional LDM on a folder of class sub-folders, through the README's own-folder
# commands only (~25 min on 2 CPU cores): Fashion-MNIST written as PNG files in one sub-folder
# per class (600 per class), a kl-f4 autoencoder, an evaluator and the LDM (800 of its preset's
# 3000 steps; LDM_STEPS=3000 for all) all from `--data DIR`, each scored on the folder's
# held-out files.
#
#   bash experiments/own_classes.sh [RUN_DIR]      # default runs/own-classes
#
# Needs the Debian package dataset-fashion-mnist.
set -euo pipefail
RUN=${1:-runs/own-classes}
LDMKIT=${LDMKIT:-.venv/bin/ldmkit}
PYTHON=${PYTHON:-.venv/bin/python}
DATA=${DATA:-data/fmnist-folder}
mkdir -p "$RUN"
[ -d "$DATA" ] || $PYTHON - "$DATA" <<'PY'
import sys
from pathlib import Path

from PIL import Image

from ldmkit.data.fashion_mnist import DEFAULT_SOURCE, FASHION_MNIST_CLASSES, load_split

out = Path(sys.argv[1])
images, labels = load_split(DEFAULT_SOURCE, "train")
written = {name: 0 for name in FASHION_MNIST_CLASSES}
for image, label in zip(images, labels, strict=True):
    name = FASHION_MNIST_CLASSES[int(label)]
    if written[name] >= 600:
        continue
    folder = out / name.replace("/", "-").replace(" ", "-").lower()
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(folder / f"{written[name]:04d}.png")
    written[name] += 1
print(f"{sum(written.values())} images in {len(written)} class folders under {out}")
PY
$LDMKIT train-autoencoder --preset fmnist-kl-f4 --data "$DATA" --out "$RUN/kl-f4" | tail -1
$LDMKIT eval reconstruction --checkpoint "$RUN/kl-f4/model" --n 1000 \
    --grid "$RUN/heldout_reconstructions.png" | tee "$RUN/reconstruction.json"
$LDMKIT train-evaluator --data "$DATA" --resolution 32 --steps 1500 --out "$RUN/evaluator" \
    | tee "$RUN/evaluator.json"
$LDMKIT train --preset fmnist-class --data "$DATA" --autoencoder "$RUN/kl-f4/model" \
    --out "$RUN/ldm" --set "run.steps=${LDM_STEPS:-800}" --set run.sample_every=400 \
    --set run.checkpoint_every=400 | tail -1
$LDMKIT eval adherence --checkpoint "$RUN/ldm/model" --evaluator "$RUN/evaluator" --n 300 \
    --guidance 3 --sampler ddim --steps 50 | tee "$RUN/adherence.json"
$LDMKIT eval fid --fake "$RUN/ldm/model" --evaluator "$RUN/evaluator" --n 300 \
    --guidance 3 --sampler ddim --steps 50 | tee "$RUN/fid.json"
$LDMKIT sample --checkpoint "$RUN/ldm/model" --per-class 8 --guidance 3 --sampler ddim \
    --steps 50 --seed 0 --out "$RUN/samples_by_class.png"
