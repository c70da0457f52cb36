#!/usr/bin/env bash
# A LoRA fine-tune of the shipped text-to-image model on a new style, through the README's
# fine-tuning commands only (~15 min on 2 CPU cores): shapes pictures the model never saw,
# turned into their negatives (inverted colours), captions kept. The LoRA should make
# "a red circle" come out as the negative of a red circle, and keep what is drawn.
#
#   bash experiments/lora_style.sh [RUN_DIR]       # default runs/lora-style
#   LR=1e-4 TARGETS=all bash experiments/lora_style.sh runs/x   # another rate; LoCon targets
#
# Scored by experiments/lora_style.py with the shipped shapes evaluator, at LoRA scales 0, 0.5
# and 1: adherence of the samples as drawn and of their negatives (the content in the new
# style), and the share of dark backgrounds.
set -euo pipefail
RUN=${1:-runs/lora-style}
LDMKIT=${LDMKIT:-.venv/bin/ldmkit}
PYTHON=${PYTHON:-.venv/bin/python}
BASE=src/ldmkit/assets/shapes_t2i
DATA="$RUN/negatives"
mkdir -p "$RUN"
[ -f "$DATA/metadata.jsonl" ] || $PYTHON - "$DATA" <<'PY'
import json
import sys
from pathlib import Path

from PIL import Image

from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset
from ldmkit.images import to_uint8

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
# Another seed than the shipped model's data (seed 0): pictures it has not seen.
items = build_dataset(DataConfig(kind="shapes", resolution=64, size=2000, seed=1234), "train")
lines = []
for i in range(len(items)):
    item = items[i]
    Image.fromarray(to_uint8(-item["image"][None])[0]).save(out / f"{i:04d}.png")
    lines.append(json.dumps({"file_name": f"{i:04d}.png", "text": item["caption"]}))
(out / "metadata.jsonl").write_text("\n".join(lines) + "\n")
print(f"{len(lines)} negatives with their captions in {out}")
PY
$LDMKIT finetune "$BASE" --data "$DATA" --lora-rank 8 --out "$RUN/lora" \
    --set "run.steps=${STEPS:-1000}" ${LR:+--set optim.lr=$LR} \
    --set "lora.targets=${TARGETS:-attention}" | tail -1
$PYTHON experiments/lora_style.py "$BASE" "$RUN/lora/lora_kohya.safetensors" --n 300 \
    --grid "$RUN/scales.png" | tee "$RUN/score.json"
