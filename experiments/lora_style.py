"""Score a style LoRA of the shipped text-to-image model (experiments/lora_style.sh): at each
LoRA scale, sample the shapes adherence prompts and ask the shipped shapes evaluator what was
drawn, as drawn and as the negative of what was drawn (the negative style undone), and measure
the share of dark backgrounds.

    python experiments/lora_style.py BASE LORA.safetensors [--n 300] [--grid scales.png]
"""

import argparse
import json
from pathlib import Path

import torch

import ldmkit
from ldmkit.assets import SHAPES_EVALUATOR
from ldmkit.checkpoint import load_evaluator
from ldmkit.evaluation.adherence import score_adherence
from ldmkit.evaluation.batched import EVALUATION_OPTIONS, options_record
from ldmkit.evaluation.generate import generate
from ldmkit.images import labelled_grid
from ldmkit.interop.lora import apply_lora

SCALES = (0.0, 0.5, 1.0)
SHOWN = 10  # samples per scale in the grid


def border_brightness(images: torch.Tensor) -> torch.Tensor:
    """Mean of each image's outer 4-pixel frame, in [-1, 1] (the background, mostly)."""
    frame = torch.ones_like(images[0, 0], dtype=torch.bool)
    frame[4:-4, 4:-4] = False
    return images[:, :, frame].mean(dim=(1, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base", type=Path)
    parser.add_argument("lora", type=Path)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--grid", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    evaluator = load_evaluator(SHAPES_EVALUATOR)
    rows, results = [], []
    for scale in SCALES:
        model = ldmkit.load(args.base)
        apply_lora(model, args.lora, scale)
        options = model.resolve(EVALUATION_OPTIONS)
        images, labels, seconds = generate(model, args.n, options)
        assert labels is not None
        dark = (border_brightness(images) < 0).float().mean().item()
        results.append(
            {
                "scale": scale,
                "as_drawn": score_adherence(evaluator, images, labels),
                "negative_undone": score_adherence(evaluator, -images, labels),
                "dark_background": dark,
                "seconds_per_image": seconds / args.n,
            }
        )
        rows.append(images[:SHOWN])
    report = {"n": args.n, **options_record(options), "lora": str(args.lora), "scales": results}
    print(json.dumps(report, indent=2))
    if args.grid is not None:
        labels = [f"LoRA x{scale:g}" for scale in SCALES]
        labelled_grid(torch.cat(rows), SHOWN, labels).save(args.grid)


if __name__ == "__main__":
    main()
