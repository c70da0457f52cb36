"""Images per second of the procedural shapes dataset (one process, one core's worth of work).

python benchmarks/shapes_speed.py --resolution 64 --n 2000
"""

import argparse
import time

from ldmkit.data.shapes import ShapesConfig, ShapesDataset, render_shapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    for single in (False, True):
        config = ShapesConfig(resolution=args.resolution, single_object=single)
        start = time.perf_counter()
        for i in range(args.n):
            render_shapes(config, 0, i)
        render = args.n / (time.perf_counter() - start)
        dataset = ShapesDataset(config, size=args.n)
        start = time.perf_counter()
        for i in range(args.n):
            dataset[i]
        item = args.n / (time.perf_counter() - start)
        mode = "single object" if single else "1-4 objects"
        print(
            f"{args.resolution}x{args.resolution} {mode}: render {render:.0f} images/s, "
            f"dataset item (with tensor) {item:.0f} images/s"
        )


if __name__ == "__main__":
    main()
