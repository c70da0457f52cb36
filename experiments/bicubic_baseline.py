"""Bicubic down-and-up sampling as a reconstruction baseline: the same held-out images an
autoencoder's `ldmkit eval reconstruction` scores, shrunk by its factor and enlarged back.

    python experiments/bicubic_baseline.py --like RUN/model [--factor 4] [--n 1000] [--resolution R]

Prints JSON: PSNR / SSIM (mean and std) of the bicubic reconstructions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from ldmkit.checkpoint import training_data
from ldmkit.data import build_dataset
from ldmkit.data.collate import collate
from ldmkit.metrics.image_quality import psnr, ssim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--like", type=Path, required=True, help="autoencoder folder (RUN/model)")
    parser.add_argument("--factor", type=int, default=4, help="shrink factor (the f of the AE)")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--resolution", type=int, help="default: the training resolution")
    args = parser.parse_args()
    data = training_data(args.like, "autoencoder")
    if args.resolution:
        data = dataclasses.replace(data, resolution=args.resolution)
    heldout = build_dataset(data, "heldout", args.n)
    n = min(args.n, len(heldout))  # type: ignore[arg-type]
    psnrs, ssims = [], []
    for start in range(0, n, 32):
        x = collate([heldout[i] for i in range(start, min(n, start + 32))])["image"]
        small = F.interpolate(x, scale_factor=1 / args.factor, mode="bicubic", antialias=True)
        back = F.interpolate(small, size=x.shape[-2:], mode="bicubic").clamp(-1, 1)
        psnrs.append(psnr(back, x))
        ssims.append(ssim(back, x))
    p, s = torch.cat(psnrs), torch.cat(ssims)
    result = {
        "baseline": f"bicubic x{args.factor} down and up",
        "data": f"held-out split of {args.like}'s training data",
        "resolution": data.resolution,
        "n": n,
        "psnr": float(p.mean()),
        "psnr_std": float(p.std()),
        "psnr_median": float(p.median()),
        "ssim": float(s.mean()),
        "ssim_std": float(s.std()),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
