"""FID / KID between two disjoint real sets: the floor a perfect generator would reach at this n.

    python experiments/fid_floor.py --n 500       # shapes, one object
    python experiments/fid_floor.py --data fashion-mnist --resolution 32 \
        --evaluator runs/fmnist/evaluator

Real training images against real held-out images, in the evaluator's feature space; compare a
model's `ldmkit eval fid` at the same n with this.
"""

import argparse
import json
from pathlib import Path

from ldmkit.assets import SHAPES_EVALUATOR
from ldmkit.checkpoint import load_evaluator
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset
from ldmkit.evaluation.fid import dataset_features, distribution_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="shapes")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--evaluator", type=Path, default=SHAPES_EVALUATOR)
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args()
    data = DataConfig(
        kind=args.data, resolution=args.resolution, single_object=args.data == "shapes", cache=False
    )
    evaluator = load_evaluator(args.evaluator)
    train = dataset_features(evaluator, build_dataset(data, "train", args.n), args.n)
    heldout = dataset_features(evaluator, build_dataset(data, "heldout", args.n), args.n)
    print(json.dumps({"data": args.data, "n": args.n, **distribution_scores(train, heldout)}))


if __name__ == "__main__":
    main()
