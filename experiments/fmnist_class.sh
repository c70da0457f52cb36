#!/usr/bin/env bash
# Class-conditional Fashion-MNIST end to end (~20 min on 2 CPU cores): kl-f4 autoencoder on
# 32x32 images, the class evaluator, the `fmnist-class` LDM, adherence and a grid per class.
#
#   bash experiments/fmnist_class.sh [RUN_DIR]      # default runs/fmnist
#
# Needs the Debian package dataset-fashion-mnist (read from /usr/share/datasets/fashion-mnist).
set -euo pipefail
RUN=${1:-runs/fmnist}
LDMKIT=${LDMKIT:-.venv/bin/ldmkit}
mkdir -p "$RUN"
$LDMKIT train-autoencoder --preset fmnist-kl-f4 --out "$RUN/kl-f4" | tail -1
$LDMKIT eval reconstruction --checkpoint "$RUN/kl-f4/model" --data fashion-mnist --n 1000 \
    | tee "$RUN/reconstruction.json"
$LDMKIT train-evaluator --data fashion-mnist --resolution 32 --steps 1500 --out "$RUN/evaluator" \
    | tee "$RUN/evaluator.json"
$LDMKIT train --preset fmnist-class --autoencoder "$RUN/kl-f4/model" --out "$RUN/ldm" | tail -1
$LDMKIT eval adherence --checkpoint "$RUN/ldm/model" --evaluator "$RUN/evaluator" --n 500 \
    --guidance 3 --sampler ddim --steps 50 | tee "$RUN/adherence.json"
$LDMKIT sample --checkpoint "$RUN/ldm/model" --per-class 8 --guidance 3 --sampler ddim \
    --steps 50 --seed 0 --out "$RUN/samples_by_class.png"
