"""Does a layout model use the boxes' positions? Its noise-prediction error on held-out scenes
given their true layouts, the same layouts mirrored left-right (same objects, other places), and
the empty layout, at a few noise levels.

    python experiments/layout_probe.py --checkpoint runs/layout/model

A model that places objects where asked predicts the noise best with the true layout; one that
reads only *what* is asked scores the true and mirrored layouts alike.
"""

import argparse
import json
from pathlib import Path

import torch

from ldmkit.checkpoint import load_latent_diffusion
from ldmkit.data.collate import collate
from ldmkit.data.shapes import HELDOUT_SEED, ShapesConfig, ShapesDataset
from ldmkit.diffusion import q_sample


def mirrored(layout: list) -> list:
    return [(c, (1.0 - x1, y0, 1.0 - x0, y1)) for c, (x0, y0, x1, y1) in layout]


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("runs/layout/model"))
    parser.add_argument("--n", type=int, default=64)
    args = parser.parse_args()
    model = load_latent_diffusion(args.checkpoint).eval()
    scenes = ShapesDataset(ShapesConfig(resolution=64), size=args.n, seed=HELDOUT_SEED)
    batch = collate([scenes[i] for i in range(args.n)])
    layouts = batch["layout"]
    z0 = model.encode(batch["image"])
    generator = torch.Generator().manual_seed(0)
    eps = torch.randn(z0.shape, generator=generator)
    results = {}
    for step in (100, 300, 500, 700, 900):
        t = torch.full((args.n,), step, dtype=torch.long)
        z_t = q_sample(model.schedule, z0, t, eps)
        row = {}
        for name, given in (
            ("true", layouts),
            ("mirrored", [mirrored(x) for x in layouts]),
            ("empty", [[] for _ in layouts]),
        ):
            context = {"context": model.context(layouts=given)}
            prediction = model.conditional_unet(z_t, t, context)
            row[name] = round(float((prediction - eps).pow(2).mean()), 5)
        results[step] = row
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
