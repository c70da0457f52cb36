#!/usr/bin/env bash
# The compiled sampling path on a CUDA GPU, with timings, in one short pass (about 5 minutes on
# an H200): sampling the shipped text-to-image model eager and compiled in fp32 and bf16, the
# compiled UNet against eager diffusers, then the Winograd operator's and compiled sampling's
# tests on that machine's own CPU and torch.
#
#   OUT=/tmp/gpu bash benchmarks/gpu_compiled.sh
#
# Needs a CUDA GPU, diffusers (for the UNet benchmark) and pytest with pytest-timeout.
set -u -o pipefail
OUT=${OUT:-/tmp/ldmkit-gpu}
export PYTHONUNBUFFERED=1 PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT"
step() { echo; echo "=== $* ($(date +%T))"; }

step environment
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

step "sampling the shipped text-to-image model on CUDA: eager and compiled, fp32 and bf16"
python3 benchmarks/sample_speed.py --device cuda --n 64 --rounds 5 | tee "$OUT/sample_speed.jsonl"

step "UNet (medium): ldmkit compiled vs diffusers eager, bf16"
python3 benchmarks/unet_vs_diffusers.py --device cuda --config medium --dtypes bf16 --sizes 64 \
    --batches 1 16 --rounds 20 --compile | tee "$OUT/unet_vs_diffusers.txt"

step "Winograd operator and compiled-sampling tests on this machine's CPU"
python3 -m pytest -q -p no:cacheprovider tests/nn/test_winograd.py tests/test_pipeline.py \
    -k "winograd or compiled" 2>&1 | tail -5 | tee "$OUT/tests.txt"
step done
