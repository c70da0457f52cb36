#!/usr/bin/env bash
# Text-to-image on the emoji set (~40 min on 2 CPU cores): emoji rendered from the Debian font
# package with their Unicode names as captions, a kl-f4 autoencoder on them, the `shapes-text`
# recipe (WordPiece tokenizer + transformer tau_theta trained with the UNet) on its latents, and a
# grid of samples for a handful of prompts.
#
#   bash experiments/emoji_t2i.sh [RUN_DIR]      # default runs/emoji
#
# Needs the Debian package fonts-noto-color-emoji.
set -euo pipefail
RUN=${1:-runs/emoji}
LDMKIT=${LDMKIT:-.venv/bin/ldmkit}
DATA=${DATA:-data/emoji}
mkdir -p "$RUN"
[ -f "$DATA/metadata.jsonl" ] || $LDMKIT data prepare emoji --out "$DATA"
# The README's own-folder commands: --data DIR (captions from DIR/metadata.jsonl, 5% of the
# files held out by name), with the emoji's size and no flips (text in emoji is not symmetric).
EMOJI=(--data "$DATA" --set data.resolution=64 --set data.flip=false)
$LDMKIT train-autoencoder --preset kl-f4 --out "$RUN/kl-f4" "${EMOJI[@]}" | tail -1
$LDMKIT eval reconstruction --checkpoint "$RUN/kl-f4/model" --data "$DATA" \
    | tee "$RUN/reconstruction.json"
$LDMKIT train --preset shapes-text --autoencoder "$RUN/kl-f4/model" --out "$RUN/t2i" \
    "${EMOJI[@]}" --set run.steps=1500 --set run.sample_every=500 | tail -1
$LDMKIT sample --checkpoint "$RUN/t2i/model" --prompts experiments/emoji_prompts.txt \
    --per-prompt 6 --guidance 3 --sampler ddim --steps 50 --seed 0 --out "$RUN/emoji_prompts.png"
