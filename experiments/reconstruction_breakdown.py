"""Where an autoencoder's reconstruction error lies on held-out shapes: mean PSNR by object count
and by background kind (the shapes ground truth knows both).

    python experiments/reconstruction_breakdown.py CHECKPOINT [--n 512]

Prints one JSON object: {"objects": {count: [images, dB]}, "background": {kind: [images, dB]}}.
"""

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch

from ldmkit.checkpoint import load_autoencoder
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset
from ldmkit.metrics.image_quality import psnr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    model = load_autoencoder(args.checkpoint).eval()
    dataset = build_dataset(DataConfig(resolution=64, cache=False), "heldout", args.n)
    groups: dict[str, defaultdict[str, list[float]]] = {
        "objects": defaultdict(list),
        "background": defaultdict(list),
    }
    with torch.no_grad():
        for start in range(0, args.n, args.batch_size):
            indices = range(start, min(args.n, start + args.batch_size))
            samples = [dataset.sample(i) for i in indices]  # type: ignore[attr-defined]
            x = torch.stack([s.tensor() for s in samples])
            scores = psnr(model.decode(model.encode(x).mode()).clamp(-1, 1), x).tolist()
            for sample, score in zip(samples, scores, strict=True):
                groups["objects"][str(len(sample.objects))].append(score)
                groups["background"][sample.background].append(score)
    summary = {
        name: {key: [len(v), round(sum(v) / len(v), 2)] for key, v in sorted(group.items())}
        for name, group in groups.items()
    }
    print(json.dumps({"checkpoint": str(args.checkpoint), **summary}))


if __name__ == "__main__":
    main()
