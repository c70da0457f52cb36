#!/usr/bin/env bash
# One pass over ldmkit's GPU paths, with timings: CUDA + bf16 autocast training of both stages,
# NCCL process-group start-up (torchrun, 1 process), sampling, adherence, and the UNet benchmark.
#
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh
#
# AE and EVALUATOR default to the shipped shapes kl-f4 autoencoder and shapes evaluator (set them
# to others trained by the README's commands). Needs a CUDA GPU and diffusers (for the UNet
# benchmark).
set -u -o pipefail
OUT=${OUT:-/tmp/ldmkit-gpu}
WORK=$(mktemp -d)  # run folders; only the results go to OUT
AE=${AE:-src/ldmkit/assets/shapes_kl_f4}
EVALUATOR=${EVALUATOR:-src/ldmkit/assets/shapes_evaluator}
export PYTHONUNBUFFERED=1 PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT"
ldm() { python3 -m ldmkit "$@"; }
step() { echo; echo "=== $* ($(date +%T))"; }

step environment
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

step "tiny autoencoder, CUDA bf16"
ldm train-autoencoder --preset tiny --out "$WORK/ae-tiny" \
    --set run.device=cuda --set run.precision=bf16 --set run.steps=40 2>&1 | tail -3

step "tiny LDM through torchrun (NCCL, 1 process), CUDA bf16"
torchrun --standalone --nproc_per_node=1 -m ldmkit train --preset tiny \
    --autoencoder "$WORK/ae-tiny/model" --out "$WORK/ldm-tiny" \
    --set run.device=cuda --set run.precision=bf16 2>&1 | tail -3

step "samplers on CUDA"
for s in ddpm ddim plms dpm++2m; do
    t0=$(date +%s.%N)
    ldm sample --checkpoint "$WORK/ldm-tiny/model" --n 8 --sampler $s --steps 20 --guidance 3 \
        --seed 0 --out "$WORK/tiny-$s.png" 2>&1 | tail -1
    echo "$s: $(awk "BEGIN{print $(date +%s.%N) - $t0}") s (process start included)"
done

step "shapes-class LDM, the CPU recipe (2700 steps, batch 64, bf16) on the GPU"
start=$(date +%s)
ldm train --preset shapes-class --autoencoder "$AE" --out "$WORK/ldm-shapes" \
    --set run.device=cuda --set run.steps=2700 --set model.loss.min_snr_gamma=5 2>&1 | tail -2
echo "train wall-clock: $(( $(date +%s) - start )) s"
ldm eval adherence --checkpoint "$WORK/ldm-shapes/model" --evaluator "$EVALUATOR" --n 300 \
    --guidance 3 --sampler ddim --steps 50 | tee "$OUT/adherence.json"
cp "$WORK/ldm-shapes/samples.png" "$OUT/shapes-samples.png"
cp "$WORK/ldm-shapes/history.json" "$OUT/shapes-history.json"

step "UNet: ldmkit vs diffusers"
python3 benchmarks/unet_vs_diffusers.py --device cuda --config medium --batches 1 16 \
    --rounds 20 | tee "$OUT/unet_vs_diffusers.txt"
