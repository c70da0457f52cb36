#!/usr/bin/env bash
# An autoencoder on your own photos, the README's own-folder commands on real data (~15 min on
# 2 CPU cores): a kl-f4 autoencoder trained on 128 px crops taken at the photos' own scale
# (data.fit=native, 64 crops per photo), a quarter of the photos held out by name, then
# PSNR / SSIM on 64 crops of 256 px from each held-out photo (the autoencoder is convolutional)
# against the shipped shapes kl-f4 autoencoder and against bicubic x4 down-and-up sampling, and
# a grid of held-out reconstructions.
#
#   bash experiments/own_photos.sh [RUN_DIR]                     # default runs/photos
#   PRESET=kl-f4-fast bash experiments/own_photos.sh [RUN_DIR]   # no group norms, 10 min budget
#
# Reads /usr/share/backgrounds as it comes: the Debian packages gnome-backgrounds,
# mate-backgrounds and ukui-wallpapers put 58 photos and illustrations there (1440 to 5640 px,
# RGB and RGBA); DATA=DIR for another folder.
set -euo pipefail
RUN=${1:-runs/photos}
LDMKIT=${LDMKIT:-.venv/bin/ldmkit}
PYTHON=${PYTHON:-.venv/bin/python}
DATA=${DATA:-/usr/share/backgrounds}
STEPS=${STEPS:-1500}
PRESET=${PRESET:-kl-f4}
mkdir -p "$RUN"
PHOTOS=(--set data.fit=native --set data.crops_per_image=64 --set data.heldout_fraction=0.25)
$LDMKIT train-autoencoder --preset "$PRESET" --data "$DATA" --out "$RUN/$PRESET" "${PHOTOS[@]}" \
    --set data.resolution=128 --set data.flip=true --set run.batch_size=8 \
    --set "run.steps=$STEPS" --set run.image_every=250 --set run.checkpoint_every=250 | tail -1
# The model's own record says which photos were held out and how they are cropped.
for SIDE in 128 256; do
    $LDMKIT eval reconstruction --checkpoint "$RUN/$PRESET/model" --n 1000 --batch-size 16 \
        --resolution $SIDE --grid "$RUN/${PRESET}_heldout_$SIDE.png" \
        | tee "$RUN/${PRESET}_reconstruction_$SIDE.json"
done
# The same held-out crops through the shipped shapes autoencoder (trained on 64 px shapes).
$LDMKIT eval reconstruction --checkpoint src/ldmkit/assets/shapes_kl_f4 --data "$DATA" \
    "${PHOTOS[@]}" --resolution 256 --n 1000 --batch-size 16 \
    --grid "$RUN/shapes_autoencoder_256.png" | tee "$RUN/reconstruction_shapes_autoencoder_256.json"
$PYTHON experiments/bicubic_baseline.py --like "$RUN/$PRESET/model" --factor 4 --resolution 256 \
    | tee "$RUN/reconstruction_bicubic_256.json"
