#!/usr/bin/env bash
# An autoencoder on your own photos, the README's own-folder commands on real data (~20 min on
# 2 CPU cores): a kl-f4 autoencoder trained on 256 px crops taken at the photos' own scale
# (data.fit=native, 64 crops per photo), a quarter of the photos held out by name, then
# PSNR / SSIM on 64 crops of each held-out photo against the shipped shapes kl-f4 autoencoder
# and against bicubic x4 down-and-up sampling, and a grid of held-out reconstructions.
#
#   bash experiments/own_photos.sh [RUN_DIR]      # default runs/photos
#
# Needs the Debian package mate-backgrounds (its nature photos, 1280 to 2560 px), or
# DATA=DIR for another folder of photos.
set -euo pipefail
RUN=${1:-runs/photos}
LDMKIT=${LDMKIT:-.venv/bin/ldmkit}
PYTHON=${PYTHON:-.venv/bin/python}
DATA=${DATA:-/usr/share/backgrounds/mate/nature}
STEPS=${STEPS:-400}
mkdir -p "$RUN"
PHOTOS=(--set data.resolution=256 --set data.fit=native --set data.crops_per_image=64
        --set data.heldout_fraction=0.25)
$LDMKIT train-autoencoder --preset kl-f4 --data "$DATA" --out "$RUN/kl-f4" "${PHOTOS[@]}" \
    --set data.flip=true --set run.batch_size=8 --set "run.steps=$STEPS" \
    --set run.image_every=100 --set run.checkpoint_every=100 | tail -1
# The model's own record says which photos were held out and how they are cropped.
$LDMKIT eval reconstruction --checkpoint "$RUN/kl-f4/model" --n 1000 --batch-size 16 \
    --grid "$RUN/heldout_reconstructions.png" | tee "$RUN/reconstruction.json"
# The same held-out crops through the shipped shapes autoencoder (trained on 64 px shapes).
$LDMKIT eval reconstruction --checkpoint src/ldmkit/assets/shapes_kl_f4 --data "$DATA" \
    "${PHOTOS[@]}" --n 1000 --batch-size 16 --grid "$RUN/shapes_autoencoder.png" \
    | tee "$RUN/reconstruction_shapes_autoencoder.json"
$PYTHON experiments/bicubic_baseline.py --like "$RUN/kl-f4/model" --factor 4 \
    | tee "$RUN/reconstruction_bicubic.json"
